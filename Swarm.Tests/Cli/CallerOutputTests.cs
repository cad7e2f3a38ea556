using System.Net.Http.Json;
using System.Net.Sockets;
using System.Runtime.Versioning;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// Issue #15, item 6: a <c>get</c> handed to a running node writes its output with the caller's rights and in the caller's
/// view of the file system, not the node's — a node in its own mount namespace (systemd's PrivateTmp/ProtectHome) must not
/// write the file into its private tree and report success, and a node running as root must not make the caller's file
/// root's. The CLI opens -o itself and hands the open file to the node.
/// </summary>
[Collection(DhtNetworkCollection.Name)] // a node, a seed and a client at once: run alone
public class CallerOutputTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private const string Nobody = "65534";

    private static byte[] RandomBytes(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Runs <c>swarm ARGS</c> as the unprivileged user nobody, with a home it may write.</summary>
    private static Task<SwarmProcess> RunAsNobodyAsync(string home, params string[] args)
    {
        var p = SwarmProcess.StartUnder(["/usr/bin/setpriv", $"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups"],
            new Dictionary<string, string> { ["HOME"] = home, ["DOTNET_CLI_HOME"] = home }, args);
        return WaitAsync(p);
    }

    private static async Task<SwarmProcess> WaitAsync(SwarmProcess p)
    {
        await p.WaitForExitAsync(Timeout);
        return p;
    }

    /// <summary>What a path is in the node's mount namespace: stat(1) run there (nsenter), or null when it sees nothing at the path.</summary>
    private static string? InNodesView(SwarmProcess node, string path)
    {
        var (code, output) = SpecialFiles.Run("nsenter", "-t", node.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "-m", "stat", "-c", "%F %u", path);
        return code == 0 ? output.Trim() : null;
    }

    [Fact]
    [SupportedOSPlatform("linux")]
    public async Task AGetThroughANodeInItsOwnMountNamespaceWritesTheCallersFileWithTheCallersRights()
    {
        if (!Environment.IsPrivilegedProcess || !File.Exists("/usr/bin/setpriv") || !File.Exists("/usr/bin/unshare") || !File.Exists("/usr/bin/nsenter"))
            Assert.Skip("needs root, setpriv, unshare and nsenter: a node in its own mount namespace, and the get run as an unprivileged user");
        var (probe, why) = SpecialFiles.Run("unshare", "--mount", "--propagation", "private", "true");
        Assert.SkipUnless(probe == 0, $"mount namespaces are not permitted here: {why.Trim()}");

        using var dir = new TempDirectory();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755: nobody may enter the test's directory
        // The caller's output directory, nobody's own. The node's namespace mounts an empty tmpfs over it (as PrivateTmp does
        // over /tmp), so a node that wrote the path itself would write into its private copy and the caller would see nothing.
        string outputs = dir.Combine("outputs");
        Directory.CreateDirectory(outputs);
        Assert.Equal(0, SpecialFiles.Run("chown", $"{Nobody}:{Nobody}", outputs).ExitCode);
        File.WriteAllText(Path.Combine(outputs, "marker"), "the caller's view");
        string home = dir.Combine("home");
        Directory.CreateDirectory(home);
        File.SetUnixFileMode(home, (UnixFileMode)0x1FF);

        var content = RandomBytes(3 * 1024 * 1024 + 5, 60);
        await using var origin = new CountingOrigin();
        origin.Serve("/f.bin", content);
        string data = dir.Combine("node");
        await using var node = SwarmProcess.StartUnder(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs swarm-private \"$0\" && exec \"$@\"", outputs], null,
            "node", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics", "off", "--mirror", "off");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        // The premise: the node sees another directory at that path (its tmpfs), without the caller's marker.
        Assert.Null(InNodesView(node, Path.Combine(outputs, "marker")));
        // A node's sockets are its own user's (0600 in a 0700 directory); here nobody is let in, as a group would be.
        File.SetUnixFileMode(data, (UnixFileMode)0x1C9); // 0711
        foreach (var socket in new[] { "swarm.sock", "output.sock" }) File.SetUnixFileMode(Path.Combine(data, socket), (UnixFileMode)0x1B6); // 0666

        string output = Path.Combine(outputs, "got.bin");
        await using (var get = await RunAsNobodyAsync(home, "get", origin.Url("/f.bin"), "-o", output, "--data-dir", data))
        {
            Assert.True(get.ExitCode == 0, get + "\nnode: " + node.Stderr);
            Assert.Contains("handing this to the node", get.Stderr, StringComparison.Ordinal);
        }
        // In the caller's view, with the right bytes, and the caller's: written with nobody's rights, not the node's (root).
        Assert.Equal(content, File.ReadAllBytes(output));
        Assert.Equal($"regular file {Nobody}", SpecialFiles.Run("stat", "-c", "%F %u", output).Output.Trim());
        // Not in the node's private tree, and nothing else left beside it (no temporary file).
        Assert.Null(InNodesView(node, output));
        Assert.Equal(["got.bin", "marker"], Directory.GetFileSystemEntries(outputs).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // The caller's rights also decide what may not be written, although the node (root) could: refused at once, exit 3,
        // before anything is asked of the origin.
        string locked = dir.Combine("locked");
        Directory.CreateDirectory(locked);
        File.SetUnixFileMode(locked, (UnixFileMode)0x1ED); // root's, 0755
        origin.Serve("/g.bin", content);
        int requests = origin.Requests;
        await using (var get = await RunAsNobodyAsync(home, "get", origin.Url("/g.bin"), "-o", Path.Combine(locked, "x.bin"), "--data-dir", data))
        {
            Assert.True(get.ExitCode == 3, get.ToString());
            Assert.Contains("cannot write -o", get.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", get.Stderr, StringComparison.Ordinal);
        }
        Assert.Equal(requests, origin.Requests);
        Assert.Empty(Directory.GetFileSystemEntries(locked));
    }

    /// <summary>A task request naming an output file by a token the node never gave (or gave out once already) is refused: 400, no task.</summary>
    [Fact]
    [SupportedOSPlatform("linux")]
    public async Task ATaskNamingAnOutputFileTheNodeWasNotHandedIsRefused()
    {
        using var dir = new TempDirectory();
        string data = dir.Combine("node");
        await using var node = SwarmProcess.Start("node", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics", "off", "--mirror", "off");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        using var http = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var c = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await c.ConnectAsync(new UnixDomainSocketEndPoint(Path.Combine(data, "swarm.sock")), ct);
                return new NetworkStream(c, ownsSocket: true);
            },
        }) { BaseAddress = new Uri("http://swarm/") };
        string id = "swarm://" + new string('a', 64);
        // A real hand-over, claimed by a first request: the second naming the same token gets nothing.
        string token;
        using (var file = File.OpenHandle(dir.Combine("out"), FileMode.CreateNew, FileAccess.Write))
            token = Swarm.Node.OutputHandOver.HandOver(Path.Combine(data, "output.sock"), file, TimeSpan.FromSeconds(10));
        using (var first = await http.PostAsJsonAsync("v1/tasks", new { source = id, output = dir.Combine("out"), outputToken = token }, TestContext.Current.CancellationToken))
            Assert.True(first.StatusCode == System.Net.HttpStatusCode.Created, await first.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        foreach (string named in new[] { token, new string('0', 32), "x" })
        {
            using var response = await http.PostAsJsonAsync("v1/tasks", new { source = id, output = dir.Combine("other"), outputToken = named }, TestContext.Current.CancellationToken);
            string body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
            Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadRequest, body);
            Assert.Contains("was not handed to this node", body, StringComparison.Ordinal);
        }
        var tasks = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("v1/tasks", TestContext.Current.CancellationToken)).RootElement;
        var task = Assert.Single(tasks.EnumerateArray());
        Assert.False(task.GetProperty("request").TryGetProperty("outputToken", out var shown) && shown.ValueKind != System.Text.Json.JsonValueKind.Null,
            "the control API shows no token");
        Assert.False(File.Exists(dir.Combine("other")));
    }
}
