using System.IO.Pipes;
using System.Net.Sockets;
using System.Runtime.Versioning;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Storage;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Hosting;

/// <summary>
/// The node's output socket as a hostile local client meets it: only one open file that swarm may write is taken, anything
/// else is refused and closed before the answer; a token is good once; unclaimed files are capped and closed when their
/// time runs out, so clients cannot make the node hold descriptors.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class HandedOutputsTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _time = new();
    private readonly HandedOutputs _outputs;

    public HandedOutputsTests()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "open files are handed over on Linux only");
        _outputs = new HandedOutputs(SocketPath, NullLogger.Instance, _time);
        _outputs.Listen();
    }

    private string SocketPath => _dir.Combine(HandedOutputs.FileName);

    public void Dispose()
    {
        _outputs?.Dispose();
        _dir.Dispose();
    }

    private Microsoft.Win32.SafeHandles.SafeFileHandle NewFile(string name) => File.OpenHandle(_dir.Combine(name), FileMode.CreateNew, FileAccess.Write);

    /// <summary>Connects and sends <paramref name="data"/>, with <paramref name="file"/> attached when given; returns the answer line.</summary>
    private string Raw(byte[] data, System.Runtime.InteropServices.SafeHandle? file)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = (int)Wait.TotalMilliseconds };
        socket.Connect(new UnixDomainSocketEndPoint(SocketPath));
        if (file != null) UnixRights.Send(socket, data, file);
        else socket.Send(data);
        var answer = new byte[1024];
        int n = socket.Receive(answer);
        return System.Text.Encoding.UTF8.GetString(answer, 0, n).TrimEnd('\n');
    }

    [Fact]
    public async Task MoreClientsAtOnceThanItServesWaitTheirTurnInsteadOfBeingTurnedAway()
    {
        // Every slot taken by a client that connects and says nothing (it is dropped after 2 s): the gets that come meanwhile
        // are served when slots free up, none refused (a fleet sends bursts of gets to one node).
        var silent = Enumerable.Range(0, HandedOutputs.MaxClients).Select(_ =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(SocketPath));
            return socket;
        }).ToList();
        try
        {
            var files = Enumerable.Range(0, 8).Select(i => NewFile($"burst{i}")).ToList();
            var handOvers = files.Select(f => Task.Run(() => OutputHandOver.HandOver(SocketPath, f, Wait), TestContext.Current.CancellationToken)).ToList();
            var tokens = await Task.WhenAll(handOvers).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
            Assert.Equal(8, tokens.Distinct().Count());
            Assert.Equal(8, _outputs.Pending);
            foreach (var f in files) f.Dispose();
        }
        finally
        {
            foreach (var socket in silent) socket.Dispose();
        }
    }

    [Fact]
    public void AFileHandedOverIsClaimedOnceByItsToken()
    {
        Assert.Equal("600", SpecialFiles.ModeOf(SocketPath)); // only the node's user may hand files over
        using var file = NewFile("out");
        string token = OutputHandOver.HandOver(SocketPath, file, Wait);
        Assert.Equal(1, _outputs.Pending);
        Assert.Null(_outputs.Claim(new string('0', token.Length)));
        using (var output = _outputs.Claim(token))
        {
            Assert.NotNull(output);
            Assert.Equal(UnixFileType.Regular, output.Type);
        }
        Assert.Null(_outputs.Claim(token)); // once
        Assert.Equal(0, _outputs.Pending);
    }

    [Fact]
    public void WhatSwarmMustNotWriteIsRefusedAndClosedBeforeTheAnswer()
    {
        // A pipe's read end: not open for writing. Refused, and the node's copy closed by the time the client has the answer,
        // so once the client drops its own copy the pipe has no reader at all.
        using (var pipe = new AnonymousPipeServerStream(PipeDirection.Out))
        {
            var refused = Assert.Throws<IOException>(() => OutputHandOver.HandOver(SocketPath, pipe.ClientSafePipeHandle, Wait));
            Assert.Contains("the node refused the output file: the FIFO handed over is not open for writing", refused.Message, StringComparison.Ordinal);
            pipe.DisposeLocalCopyOfClientHandle();
            Assert.Throws<IOException>(() => pipe.Write([1])); // EPIPE: nobody holds the read end
        }

        File.WriteAllText(_dir.Combine("ro"), "x");
        using (var readOnly = File.OpenHandle(_dir.Combine("ro"), FileMode.Open, FileAccess.Read))
            Assert.Contains("the file handed over is not open for writing", Raw([HandedOutputs.Version], readOnly), StringComparison.Ordinal);
        using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            Assert.Contains("the file handed over is a socket", Raw([HandedOutputs.Version], socket.SafeHandle), StringComparison.Ordinal);
        using (var file = NewFile("v2"))
            Assert.StartsWith("error this is not a hand-over the node understands", Raw([2], file), StringComparison.Ordinal);
        using (var file = NewFile("long"))
            Assert.StartsWith("error this is not a hand-over the node understands", Raw([HandedOutputs.Version, 0, 0], file), StringComparison.Ordinal);
        Assert.Equal("error hand over exactly one open file (this came with 0)", Raw([HandedOutputs.Version], null));
        Assert.Equal(0, _outputs.Pending);
    }

    [Fact]
    public async Task UnclaimedFilesAreCappedAndClosedWhenTheirTimeRunsOut()
    {
        // The write end of a pipe, handed over and dropped here: its reader sees the end only once the node closes its copy.
        using var pipe = new AnonymousPipeServerStream(PipeDirection.In);
        OutputHandOver.HandOver(SocketPath, pipe.ClientSafePipeHandle, Wait);
        pipe.DisposeLocalCopyOfClientHandle();
        var files = Enumerable.Range(1, HandedOutputs.MaxPending - 1).Select(i => NewFile($"f{i}")).ToList();
        try
        {
            foreach (var f in files) OutputHandOver.HandOver(SocketPath, f, Wait);
            Assert.Equal(HandedOutputs.MaxPending, _outputs.Pending);
            using (var extra = NewFile("extra"))
            {
                var full = Assert.Throws<IOException>(() => OutputHandOver.HandOver(SocketPath, extra, Wait));
                Assert.Contains($"the node holds {HandedOutputs.MaxPending} output files that no task has claimed yet", full.Message, StringComparison.Ordinal);
            }
            Assert.Equal(HandedOutputs.MaxPending, _outputs.Pending);

            _time.Advance(HandedOutputs.Lifetime - TimeSpan.FromSeconds(1));
            _outputs.Sweep();
            Assert.Equal(HandedOutputs.MaxPending, _outputs.Pending); // not yet

            _time.Advance(TimeSpan.FromSeconds(2));
            using (var late = NewFile("late"))
                OutputHandOver.HandOver(SocketPath, late, Wait); // room again: the expired ones were closed
            Assert.Equal(1, _outputs.Pending);
            var buffer = new byte[1];
            int read = await Task.Run(() => pipe.Read(buffer, 0, 1), TestContext.Current.CancellationToken).WaitAsync(Wait, TestContext.Current.CancellationToken);
            Assert.Equal(0, read); // the end of the pipe: the node closed the write end it held
        }
        finally
        {
            foreach (var f in files) f.Dispose();
        }
    }
}
