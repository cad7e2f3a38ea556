using Swarm.Core.Sources;
using System.Net.Sockets;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Storage;

/// <summary>
/// Issue #13: <c>-o</c> onto a FIFO, a device or a symbolic link writes through it (or at the link's target) and never
/// replaces it with a hard link into the store; directories, sockets and block devices are refused.
/// </summary>
public sealed class OutputTargetTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly TempDirectory _dir = new();
    private readonly NodeKey _key = NodeKey.Generate();

    public void Dispose()
    {
        _key.Dispose();
        _dir.Dispose();
    }

    private async Task<(StoredContent Content, byte[] Bytes)> IngestAsync(int size = 2 * 1024 * 1024 + 333)
    {
        string source = _dir.WriteRandomFile("source.bin", size, seed: 9);
        var store = new ContentStore(_dir.Combine("store"));
        var content = await Ingest.FileAsync(store, source, _key, null, TestContext.Current.CancellationToken);
        return (content, File.ReadAllBytes(source));
    }

    [Fact]
    public async Task A_fifo_gets_the_bytes_and_stays_a_fifo()
    {
        var (content, bytes) = await IngestAsync();
        using var _ = content;
        string fifo = _dir.Combine("pipe");
        SpecialFiles.MakeFifo(fifo);
        using var reader = SpecialFiles.ReadFifo(fifo);
        Assert.True(OutputTarget.Inspect(fifo).WritesThrough);
        var export = Task.Run(() => content.Export(fifo), TestContext.Current.CancellationToken);
        await export.WaitAsync(Timeout, TestContext.Current.CancellationToken);
        Assert.Equal(bytes, await reader.Bytes.WaitAsync(Timeout, TestContext.Current.CancellationToken));
        Assert.Equal("fifo", SpecialFiles.TypeOf(fifo));
        Assert.Equal(["pipe", "source.bin", "store"], Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task A_symlink_to_a_regular_file_stays_a_symlink_and_its_target_gets_the_content()
    {
        var (content, bytes) = await IngestAsync();
        using var _ = content;
        Directory.CreateDirectory(_dir.Combine("real"));
        File.WriteAllText(_dir.Combine("real", "file.bin"), "old contents");
        string link = _dir.Combine("link.bin");
        File.CreateSymbolicLink(link, Path.Combine("real", "file.bin")); // relative, as ln -s makes them
        var target = OutputTarget.Inspect(link);
        Assert.False(target.WritesThrough);
        Assert.Equal(_dir.Combine("real", "file.bin"), target.FilePath);

        content.Export(link);
        content.Export(link); // again: the target already is the content

        Assert.Equal("symbolic link", SpecialFiles.TypeOf(link));
        Assert.Equal(Path.Combine("real", "file.bin"), new FileInfo(link).LinkTarget);
        Assert.Equal(bytes, File.ReadAllBytes(_dir.Combine("real", "file.bin")));
        Assert.Equal([_dir.Combine("real", "file.bin")], Directory.GetFileSystemEntries(_dir.Combine("real")));
    }

    [Fact]
    public async Task A_dangling_symlink_gets_its_target_created_through_it_but_not_its_directory()
    {
        var (content, bytes) = await IngestAsync();
        using var _ = content;
        string link = _dir.Combine("link.bin");
        File.CreateSymbolicLink(link, _dir.Combine("new.bin"));
        content.Export(link);
        Assert.Equal("symbolic link", SpecialFiles.TypeOf(link));
        Assert.Equal(bytes, File.ReadAllBytes(_dir.Combine("new.bin")));

        string nowhere = _dir.Combine("nowhere.bin");
        File.CreateSymbolicLink(nowhere, _dir.Combine("no", "such", "dir", "x.bin"));
        var e = Assert.Throws<OutputTargetException>(() => content.Export(nowhere));
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_dir.Combine("no")));
    }

    [Fact]
    public async Task A_symlink_to_a_fifo_writes_through_it()
    {
        var (content, bytes) = await IngestAsync(70_000);
        using var _ = content;
        string fifo = _dir.Combine("pipe");
        SpecialFiles.MakeFifo(fifo);
        string link = _dir.Combine("link");
        File.CreateSymbolicLink(link, fifo);
        using var reader = SpecialFiles.ReadFifo(fifo);
        await Task.Run(() => content.Export(link), TestContext.Current.CancellationToken).WaitAsync(Timeout, TestContext.Current.CancellationToken);
        Assert.Equal(bytes, await reader.Bytes.WaitAsync(Timeout, TestContext.Current.CancellationToken));
        Assert.Equal("symbolic link", SpecialFiles.TypeOf(link));
        Assert.Equal("fifo", SpecialFiles.TypeOf(fifo));
    }

    [Fact]
    public async Task A_character_device_is_written_through_and_keeps_its_numbers()
    {
        string device = _dir.Combine("null");
        SpecialFiles.MakeNullDevice(device);
        var (content, _) = await IngestAsync();
        using var __ = content;
        Assert.True(OutputTarget.Inspect(device).WritesThrough);
        content.Export(device);
        Assert.Equal("character special file", SpecialFiles.TypeOf(device));
        Assert.Equal("1 3", SpecialFiles.DeviceNumbers(device));
    }

    [Fact]
    public async Task A_directory_a_socket_and_a_block_device_are_refused_and_left_alone()
    {
        var (content, _) = await IngestAsync(10_000);
        using var _ = content;
        string dir = _dir.Combine("adir");
        Directory.CreateDirectory(dir);
        var e = Assert.Throws<OutputTargetException>(() => OutputTarget.Inspect(dir));
        Assert.Contains("is a directory", e.Message, StringComparison.Ordinal);
        Assert.Throws<OutputTargetException>(() => content.Export(dir));
        Assert.Equal("directory", SpecialFiles.TypeOf(dir));

        string link = _dir.Combine("dirlink");
        File.CreateSymbolicLink(link, dir);
        e = Assert.Throws<OutputTargetException>(() => OutputTarget.Inspect(link));
        Assert.Contains("symbolic link to", e.Message, StringComparison.Ordinal);

        string socketPath = _dir.Combine("sock");
        using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            socket.Bind(new UnixDomainSocketEndPoint(socketPath));
            e = Assert.Throws<OutputTargetException>(() => content.Export(socketPath));
            Assert.Contains("a socket", e.Message, StringComparison.Ordinal);
            Assert.Equal("socket", SpecialFiles.TypeOf(socketPath));
        }

        string loop = _dir.Combine("loop");
        File.CreateSymbolicLink(loop, loop);
        e = Assert.Throws<OutputTargetException>(() => OutputTarget.Inspect(loop));
        Assert.Contains("cannot be followed", e.Message, StringComparison.Ordinal);

        Assert.SkipUnless(Environment.IsPrivilegedProcess, "making a block device node (mknod) needs root");
        string block = _dir.Combine("blk");
        var (code, output) = SpecialFiles.Run("mknod", block, "b", "7", "200");
        Assert.SkipUnless(code == 0, $"mknod is not permitted here: {output.Trim()}");
        e = Assert.Throws<OutputTargetException>(() => content.Export(block));
        Assert.Contains("block device", e.Message, StringComparison.Ordinal);
        Assert.Equal("block special file", SpecialFiles.TypeOf(block));
    }

    [Fact]
    public async Task A_regular_file_and_a_new_path_are_still_exported_atomically_as_hard_links()
    {
        var (content, bytes) = await IngestAsync(50_000);
        using var _ = content;
        string existing = _dir.Combine("existing.bin");
        File.WriteAllText(existing, "old");
        content.Export(existing);
        content.Export(_dir.Combine("sub", "new.bin"));
        Assert.Equal(bytes, File.ReadAllBytes(existing));
        Assert.Equal(bytes, File.ReadAllBytes(_dir.Combine("sub", "new.bin")));
        Assert.Equal("3", SpecialFiles.Run("stat", "-c", "%h", content.DataPath).Output.Trim()); // the data file and two links
    }
}
