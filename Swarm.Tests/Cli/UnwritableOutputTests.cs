using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Swarm.Core.Content;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>A get whose output can never be written fails at once, before it connects to anyone.</summary>
public class UnwritableOutputTests
{
    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task AGetIntoADirectoryTheUserCannotWriteFailsBeforeAnyDownloadWithExit3()
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/bin/setpriv"))
            Assert.Skip("needs root and setpriv, to run the get as an unprivileged user (root may write anywhere)");
        using var dir = new TempDirectory();
        // A directory only root may write, and a data directory and home the unprivileged user may use.
        string locked = dir.Combine("locked");
        Directory.CreateDirectory(locked);
        File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        string open = dir.Combine("open");
        Directory.CreateDirectory(open);
        File.SetUnixFileMode(open, (UnixFileMode)0x1FF);
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755: the user may enter the test's directory

        // A "peer" that counts who connects: the get must not reach it.
        using var peer = new TcpListener(IPAddress.Loopback, 0);
        peer.Start();
        int port = ((IPEndPoint)peer.LocalEndpoint).Port;
        var id = new ContentId(Hash256.Random());

        var psi = new ProcessStartInfo("/usr/bin/setpriv") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "dotnet", SwarmProcess.CliPath, "get", id.ToUri(), "-o", Path.Combine(locked, "out.bin"),
                     "--data-dir", Path.Combine(open, "data"), "--peer", $"127.0.0.1:{port}", "--listen", "127.0.0.1:0" })
            psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = open;
        psi.Environment["DOTNET_CLI_HOME"] = open;
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var get = Process.Start(psi)!;
        var stderr = get.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await get.WaitForExitAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        string err = await stderr;
        Assert.True(get.ExitCode == 3, $"exit {get.ExitCode}: {err}");
        Assert.Contains("cannot write -o", err, StringComparison.Ordinal);
        Assert.Contains(locked, err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal); // no stack trace
        Assert.False(peer.Pending(), "the get connected to a peer although its output could not be written");
        Assert.False(File.Exists(Path.Combine(locked, "out.bin")));
        Assert.Empty(Directory.GetFiles(locked)); // the probe left nothing behind
    }
}
