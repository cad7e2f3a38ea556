using System.Diagnostics;
using System.Net;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Hosting;

/// <summary>
/// OTLP traces as a collector receives them (<see cref="OtlpCollector"/>: OTLP/HTTP protobuf on 127.0.0.1): a <c>get</c>
/// that runs its own node sends, before it exits, one trace whose root is <c>swarm.get</c> with one child per phase
/// (lookup, peers, pieces, export); a get handed to a running node is traced by the node, and so is a mirror request;
/// nothing is sent when no endpoint is set.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public class TracingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static void AssertGetTrace(IReadOnlyList<OtlpSpan> spans, string what)
    {
        string all = string.Join("\n", spans.Select(s => $"{s.Name} {s.SpanId} parent {s.ParentSpanId} trace {s.TraceId}"));
        var root = Assert.Single(spans, s => s.Name == "swarm.get");
        Assert.True(root.ParentSpanId.Length == 0, $"{what}: swarm.get is the root of its trace\n{all}");
        Assert.Equal("swarm", root.Service);
        Assert.Equal("content_id", root.Attributes["swarm.source"]);
        Assert.Equal(0, root.StatusCode); // unset: no error
        foreach (var phase in new[] { "swarm.lookup", "swarm.peers", "swarm.pieces", "swarm.export" })
        {
            var child = Assert.Single(spans, s => s.Name == phase);
            Assert.True(child.ParentSpanId == root.SpanId && child.TraceId == root.TraceId, $"{what}: {phase} is a child of swarm.get\n{all}");
        }
        Assert.True(spans.Single(s => s.Name == "swarm.lookup").Attributes.ContainsKey("swarm.providers"));
        Assert.Equal("1", spans.Single(s => s.Name == "swarm.peers").Attributes["swarm.peers"]);
        // One span per phase, none per piece: the whole trace is these five.
        Assert.Equal(5, spans.Count(s => s.TraceId == root.TraceId));
    }

    /// <summary>
    /// Waits (up to a minute) for the node's first answer on its control socket: the CLI gives a node 5 s to answer before
    /// it runs the command itself, and a node's first request (its code compiled as it runs) can take longer on a busy machine.
    /// </summary>
    private static async Task AnswersOnItsControlSocketAsync(string socket)
    {
        using var http = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                await s.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socket), ct);
                return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
            },
        }) { Timeout = TimeSpan.FromSeconds(60) };
        using var answer = await http.GetAsync("http://swarm-node/healthz", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
    }

    [Fact]
    public async Task AGetWithItsOwnNodeSendsItsSpansBeforeItExits()
    {
        using var dir = new TempDirectory();
        await using var collector = await OtlpCollector.StartAsync();
        string source = dir.WriteRandomFile("f.bin", 3 * 1024 * 1024 + 7);
        int seedPort = FreePort.Get();
        await using var seed = SwarmProcess.Start("seed", source, "--data-dir", dir.Combine("seed"), "--listen", $"127.0.0.1:{seedPort}");
        string id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), Timeout);

        await using var get = await SwarmProcess.RunAsync(Timeout, "get", id, "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("getter"),
            "--bootstrap", $"127.0.0.1:{seedPort}", "--listen", "127.0.0.1:0", "--otlp-endpoint", collector.Url);
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(dir.Combine("out.bin")));
        // The process has exited: what it sent is all there is (the batch exporter's 5 s schedule never came; the flush at exit did).
        AssertGetTrace(collector.Spans, "an embedded get");
        Assert.DoesNotContain(collector.Spans, s => s.Name == "swarm.seed"); // the seed process was given no endpoint

        // Off by default: the same get without the setting sends nothing.
        int before = collector.Requests;
        await using var quiet = await SwarmProcess.RunAsync(Timeout, "get", id, "-o", dir.Combine("out2.bin"), "--data-dir", dir.Combine("getter2"),
            "--bootstrap", $"127.0.0.1:{seedPort}", "--listen", "127.0.0.1:0");
        Assert.True(quiet.ExitCode == 0, quiet.ToString());
        Assert.Equal(before, collector.Requests);
    }

    [Fact]
    public async Task ARunningNodeTracesTheGetsItRunsAndItsMirrorRequests()
    {
        using var dir = new TempDirectory();
        await using var collector = await OtlpCollector.StartAsync();
        string source = dir.WriteRandomFile("f.bin", 2 * 1024 * 1024 + 3);
        int seedPort = FreePort.Get(), mirror = FreePort.Get();
        await using var seed = SwarmProcess.Start("seed", source, "--data-dir", dir.Combine("seed"), "--listen", $"127.0.0.1:{seedPort}");
        string id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), Timeout);
        // The setting from the environment, as a service manager would give it.
        await using var node = SwarmProcess.StartWith(new Dictionary<string, string> { ["SWARM_OTLP_ENDPOINT"] = collector.Url },
            "node", "--data-dir", dir.Combine("node"), "--listen", "127.0.0.1:0", "--bootstrap", $"127.0.0.1:{seedPort}", "--metrics", "off",
            "--mirror", $"127.0.0.1:{mirror}", "--upstream", "127.0.0.1:1");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        await AnswersOnItsControlSocketAsync(dir.Combine("node", "swarm.sock"));

        await using var get = await SwarmProcess.RunAsync(Timeout, "get", id, "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("node"));
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Contains("handing this to the node", get.Stderr, StringComparison.Ordinal);
        using (var http = new HttpClient())
        {
            var answer = await http.GetAsync($"http://127.0.0.1:{mirror}/v2/demo/app/blobs/sha256:{new string('0', 64)}", TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.NotFound, answer.StatusCode);
        }

        // SIGTERM: the node stops and sends what its batch still holds.
        node.Terminate();
        await node.WaitForExitAsync(Timeout);
        Assert.True(node.ExitCode == 0, node.ToString());
        AssertGetTrace([.. collector.Spans.Where(s => s.Name != "swarm.mirror")], "a get run by the node");
        var request = Assert.Single(collector.Spans, s => s.Name == "swarm.mirror");
        Assert.True(request.ParentSpanId.Length == 0, "a mirror request is a trace of its own");
        Assert.Equal(("blob", "miss", "404", "GET"), (request.Attributes["swarm.kind"], request.Attributes["swarm.result"],
            request.Attributes["http.response.status_code"], request.Attributes["http.request.method"]));
        Assert.Equal("127.0.0.1:1", request.Attributes["swarm.registry"]);
        Assert.DoesNotContain(collector.Spans, s => s.Attributes.Values.Any(v => v.Contains("sha256:", StringComparison.Ordinal)));
    }
}
