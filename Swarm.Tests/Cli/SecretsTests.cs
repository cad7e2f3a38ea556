using System.Text;
using System.Text.Json;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// Issue #13: <c>-H</c> header values and <c>--filter</c>ed query values (signatures) never sit in a file other users can
/// read, and <c>ls</c>, <c>status</c>, the node's log, <c>/metrics</c> and error texts show them as REDACTED; the node keeps
/// the real values (in memory and its 0600 task list), so a task resumed after a restart still sends the header.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SecretsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private const string Secret1 = "SECRET1";
    private const string Secret2 = "SECRET2";
    private const string Authorization = "Bearer " + Secret1;

    private static byte[] RandomBytes(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static string[] GetArgs(CountingOrigin origin, string path, string output, string dataDir) =>
        ["get", origin.Url(path) + "?x=1&sig=" + Secret2, "--filter", "sig", "-H", "Authorization: " + Authorization, "-o", output, "--data-dir", dataDir];

    private static async Task<SwarmProcess> StartNodeAsync(string dataDir, int metricsPort)
    {
        var node = SwarmProcess.Start("node", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--metrics", $"127.0.0.1:{metricsPort}", "--mirror", "off");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        return node;
    }

    private static void AssertNoSecret(string text, string where)
    {
        Assert.False(text.Contains(Secret1, StringComparison.Ordinal), $"{where} shows the header value:\n{text}");
        Assert.False(text.Contains(Secret2, StringComparison.Ordinal), $"{where} shows the signature:\n{text}");
    }

    /// <summary>The data directory is 0700, and every file in it that holds a secret is readable by its owner only.</summary>
    private static void AssertSecretsAtRestArePrivate(string dataDir)
    {
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dataDir));
        const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        byte[][] secrets = [Encoding.UTF8.GetBytes(Secret1), Encoding.UTF8.GetBytes(Secret2)];
        foreach (var file in Directory.EnumerateFiles(dataDir, "*", SearchOption.AllDirectories))
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(file);
            }
            catch (IOException)
            {
                continue; // the control socket: not a file that can be read
            }
            if (secrets.Any(s => bytes.AsSpan().IndexOf(s) >= 0))
                Assert.True((File.GetUnixFileMode(file) & others) == 0, $"{file} holds a secret and has mode {SpecialFiles.ModeOf(file)}");
        }
        string tasks = Path.Combine(dataDir, "tasks.json");
        if (File.Exists(tasks)) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(tasks));
    }

    private static async Task<string> RunOkAsync(params string[] args)
    {
        await using var p = await SwarmProcess.RunAsync(Timeout, args);
        Assert.True(p.ExitCode == 0, p.ToString());
        return p.Stdout + p.Stderr;
    }

    [Fact]
    public async Task ThroughTheNodeSecretsAreNeitherWrittenWhereOthersCanReadNorShown()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(3 * 1024 * 1024 + 5, 50);
        await using var origin = new CountingOrigin { RequiredAuthorization = Authorization };
        origin.Serve("/f.bin", content);
        string data = dir.Combine("node");
        Directory.CreateDirectory(data);
        File.SetUnixFileMode(data, (UnixFileMode)Convert.ToInt32("755", 8)); // as an older swarm (or mkdir) left it
        int metrics = FreePort.Get();
        await using var node = await StartNodeAsync(data, metrics);
        Assert.Contains("changed it to 0700", node.Stderr, StringComparison.Ordinal);

        await using (var get = await SwarmProcess.RunAsync(Timeout, GetArgs(origin, "/f.bin", dir.Combine("out.bin"), data)))
        {
            Assert.True(get.ExitCode == 0, get + node.Stderr);
            Assert.Contains("handing this to the node", get.Stderr, StringComparison.Ordinal);
            AssertNoSecret(get.Stderr + get.Stdout, "get");
        }
        Assert.Equal(content, File.ReadAllBytes(dir.Combine("out.bin")));
        Assert.NotEmpty(origin.Authorizations);
        Assert.All(origin.Authorizations, a => Assert.Equal(Authorization, a)); // the real header went to the origin

        // A failing task: the origin's 404 names the URL; the error text, ls and the log show it redacted.
        await using (var missing = await SwarmProcess.RunAsync(Timeout, GetArgs(origin, "/missing.bin", dir.Combine("missing.bin"), data)))
        {
            Assert.True(missing.ExitCode == 2, missing + node.Stderr);
            Assert.Contains("404", missing.Stderr, StringComparison.Ordinal);
            AssertNoSecret(missing.Stderr + missing.Stdout, "the failing get");
        }

        string lsJson = await RunOkAsync("ls", "--json", "--data-dir", data);
        AssertNoSecret(lsJson, "ls --json");
        var tasks = JsonDocument.Parse(lsJson[..(lsJson.LastIndexOf('}') + 1)]).RootElement.GetProperty("tasks").EnumerateArray().ToList();
        Assert.Equal(2, tasks.Count);
        foreach (var t in tasks)
        {
            var request = t.GetProperty("request");
            Assert.Contains("sig=REDACTED", request.GetProperty("source").GetString(), StringComparison.Ordinal);
            Assert.Contains("x=1", request.GetProperty("source").GetString(), StringComparison.Ordinal);
            Assert.Equal(["Authorization: REDACTED"], request.GetProperty("headers").EnumerateArray().Select(h => h.GetString()));
        }
        Assert.Contains(tasks, t => t.GetProperty("state").GetString() == "failed" && t.GetProperty("error").GetString()!.Contains("404", StringComparison.Ordinal));
        AssertNoSecret(await RunOkAsync("ls", "--data-dir", data), "ls");
        AssertNoSecret(await RunOkAsync("status", "--json", "--data-dir", data), "status --json");
        AssertNoSecret(await RunOkAsync("status", "--data-dir", data), "status");
        using (var http = new HttpClient())
            AssertNoSecret(await http.GetStringAsync($"http://127.0.0.1:{metrics}/metrics", TestContext.Current.CancellationToken), "/metrics");

        node.Terminate();
        await node.WaitForExitAsync(Timeout);
        AssertNoSecret(node.Stderr, "the node's log");
        Assert.Contains("sig=REDACTED", node.Stderr, StringComparison.Ordinal); // the failure was logged, with the URL redacted
        AssertSecretsAtRestArePrivate(data);
    }

    [Fact]
    public async Task WithoutANodeTheDataDirectoryIsPrivateAndMessagesAreRedacted()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(1024 * 1024 + 3, 51);
        await using var origin = new CountingOrigin { RequiredAuthorization = Authorization };
        origin.Serve("/f.bin", content);
        string data = dir.Combine("embedded", "data");
        await using (var get = await SwarmProcess.RunAsync(Timeout, GetArgs(origin, "/f.bin", dir.Combine("out.bin"), data)))
        {
            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.DoesNotContain("handing this to the node", get.Stderr, StringComparison.Ordinal);
            AssertNoSecret(get.Stderr + get.Stdout, "get");
        }
        Assert.Equal(content, File.ReadAllBytes(dir.Combine("out.bin")));
        Assert.All(origin.Authorizations, a => Assert.Equal(Authorization, a));

        await using (var missing = await SwarmProcess.RunAsync(Timeout, GetArgs(origin, "/missing.bin", dir.Combine("missing.bin"), data)))
        {
            Assert.True(missing.ExitCode == 2, missing.ToString());
            Assert.Contains("404", missing.Stderr, StringComparison.Ordinal);
            Assert.Contains("REDACTED", missing.Stderr, StringComparison.Ordinal);
            AssertNoSecret(missing.Stderr + missing.Stdout, "the failing get");
        }
        AssertSecretsAtRestArePrivate(data);
    }

    [Fact]
    public async Task ANodeStoppedMidTaskKeepsTheHeaderPrivatelyAndTheResumedTaskSendsIt()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(12 * 1024 * 1024, 52);
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(8), SupportsRanges = true, RequiredAuthorization = Authorization };
        origin.Serve("/slow.bin", content);
        string data = dir.Combine("node");
        string output = dir.Combine("out.bin");
        await using (var node = await StartNodeAsync(data, FreePort.Get()))
        {
            await using var get = SwarmProcess.Start(GetArgs(origin, "/slow.bin", output, data));
            await Poll.UntilAsync(() => origin.BytesSent >= content.Length / 3 || get.HasExited, Timeout, "a third of the file");
            node.Terminate();
            await node.WaitForExitAsync(Timeout);
            Assert.Equal(0, node.ExitCode);
            await get.WaitForExitAsync(Timeout);
            Assert.Equal(2, get.ExitCode);
            AssertNoSecret(node.Stderr, "the node's log");
            AssertNoSecret(get.Stderr, "get");
        }
        Assert.False(File.Exists(output), "the node must be stopped mid-download");
        string tasks = Path.Combine(data, "tasks.json");
        Assert.True(File.Exists(tasks));
        Assert.Contains(Secret1, File.ReadAllText(tasks), StringComparison.Ordinal); // kept, for the resume: but only for its owner
        AssertSecretsAtRestArePrivate(data);
        int before = origin.Authorizations.Count;

        await using var restarted = await StartNodeAsync(data, FreePort.Get());
        Assert.Contains("1 task(s) resumed", restarted.Stderr, StringComparison.Ordinal);
        // The resumed task fetches into the store (the stopped get's output file went with it); the same get again writes it.
        await Poll.UntilAsync(async () =>
        {
            await using var ls = await SwarmProcess.RunAsync(Timeout, "ls", "--json", "--data-dir", data);
            Assert.True(ls.ExitCode == 0, ls.ToString());
            return System.Text.Json.JsonDocument.Parse(ls.Stdout).RootElement.GetProperty("tasks").EnumerateArray().Any(t => t.GetProperty("state").GetString() == "done");
        }, Timeout, "the resumed task to finish");
        var after = origin.Authorizations.Skip(before).ToList();
        Assert.False(File.Exists(output), "a resumed task writes no file: only a running get hands the node its output");
        string again = await RunOkAsync(GetArgs(origin, "/slow.bin", output, data));
        Assert.Equal(content, File.ReadAllBytes(output));
        AssertNoSecret(again, "the second get");
        Assert.NotEmpty(after);
        Assert.All(after, a => Assert.Equal(Authorization, a));
        AssertNoSecret(await RunOkAsync("ls", "--json", "--data-dir", data), "ls --json");
        AssertNoSecret(restarted.Stderr, "the restarted node's log");
        AssertSecretsAtRestArePrivate(data);
    }
}
