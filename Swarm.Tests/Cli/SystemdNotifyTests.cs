using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Runtime.Versioning;
using System.Text;
using System.Text.Json;
using Swarm.Core.Dht;
using Swarm.Core.Identity;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// <c>swarm node</c> as systemd runs a <c>Type=notify</c> service (deploy/swarm.service): the test is the service manager —
/// it binds the notification socket (a Unix datagram socket) and starts the node with the environment systemd gives it,
/// NOTIFY_SOCKET and SYSTEMD_EXEC_PID naming the node's own process. READY=1 must arrive only when the peer port, the DHT,
/// the control socket, /healthz and the registry mirror all answer; SIGTERM must give STOPPING=1 and a graceful exit 0;
/// log lines take journald's form there, and stay as they were without systemd.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class SystemdNotifyTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>sh sets SYSTEMD_EXEC_PID to its own pid and execs the node, which keeps that pid: as systemd does (v248+).</summary>
    private static readonly string[] AsSystemdStartsIt = ["sh", "-c", "export SYSTEMD_EXEC_PID=$$; exec \"$@\"", "sh"];

    private static async Task<string> ReceiveAsync(Socket notify, string what)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(Timeout);
        var buffer = new byte[4096];
        try
        {
            int n = await notify.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            return Encoding.UTF8.GetString(buffer, 0, n);
        }
        catch (OperationCanceledException) when (!Ct.IsCancellationRequested)
        {
            throw new TimeoutException($"no {what} on the notification socket within {Timeout.TotalSeconds:0} s");
        }
    }

    private static void AcceptsAtOnce(string what, AddressFamily family, ProtocolType protocol, EndPoint endPoint)
    {
        using var socket = new Socket(family, SocketType.Stream, protocol);
        try
        {
            socket.Connect(endPoint);
        }
        catch (SocketException e)
        {
            Assert.Fail($"READY=1 came before the node's {what} ({endPoint}) listened: {e.SocketErrorCode}");
        }
    }

    [Fact]
    public async Task ReadyComesOnlyOnceEveryListenerAnswersAndSigtermSaysStopping()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "systemd's notification protocol is Linux's");
        using var dir = new TempDirectory();
        string socketPath = dir.Combine("notify");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(socketPath));
        int peer = FreePort.Get(), metrics = FreePort.Get(), mirror = FreePort.Get();
        // A bootstrap node that never answers: the node's start waits out its pings with the peer port already bound and the
        // control socket, metrics and mirror not yet, so a READY=1 sent before everything listens is seen to be early.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        string data = dir.Combine("node");
        await using var node = SwarmProcess.StartUnder(AsSystemdStartsIt, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = socketPath },
            "node", "--data-dir", data, "--listen", $"127.0.0.1:{peer}", "--metrics", $"127.0.0.1:{metrics}", "--mirror", $"127.0.0.1:{mirror}",
            "--bootstrap", silent.LocalEndPoint!.ToString()!);

        var receiving = ReceiveAsync(notify, "READY=1");
        await Task.WhenAny(receiving, node.WaitForExitAsync(Timeout));
        Assert.True(receiving.IsCompleted, $"the node exited before READY=1\n{node}");
        Assert.Equal("READY=1", await receiving);

        // At this moment every listener accepts, without waiting or retrying: first plain connects (a port that does not
        // listen yet refuses at once), then each protocol.
        foreach (var (what, port) in new[] { ("peer port", peer), ("metrics address", metrics), ("registry mirror", mirror) })
            AcceptsAtOnce(what, AddressFamily.InterNetwork, ProtocolType.Tcp, new IPEndPoint(IPAddress.Loopback, port));
        AcceptsAtOnce("control socket", AddressFamily.Unix, ProtocolType.Unspecified, new UnixDomainSocketEndPoint(Path.Combine(data, "swarm.sock")));
        using var key = NodeKey.Generate();
        await using var dht = new DhtNode(key);
        dht.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var answeredBy = await dht.PingAsync(new IPEndPoint(IPAddress.Loopback, peer), TimeSpan.FromSeconds(10), Ct);
        Assert.True(answeredBy != null, "the node's DHT (UDP) did not answer a ping at READY=1");
        using (var http = new HttpClient { Timeout = Timeout })
        {
            Assert.Equal("ok\n", await http.GetStringAsync($"http://127.0.0.1:{metrics}/healthz", Ct));
            using var v2 = await http.GetAsync($"http://127.0.0.1:{mirror}/v2/", Ct);
            Assert.Equal(HttpStatusCode.OK, v2.StatusCode);
        }
        await using (var status = await SwarmProcess.RunAsync(Timeout, "status", "--json", "--data-dir", data))
        {
            Assert.True(status.ExitCode == 0, status.ToString());
            Assert.Equal(answeredBy.Value.ToHex(), JsonDocument.Parse(status.Stdout).RootElement.GetProperty("nodeId").GetString());
        }

        node.Terminate();
        Assert.Equal("STOPPING=1", await ReceiveAsync(notify, "STOPPING=1 after SIGTERM"));
        await node.WaitForExitAsync(Timeout);
        Assert.True(node.ExitCode == 0, node.ToString());
        Assert.Contains("stopping:", node.Stderr, StringComparison.Ordinal); // the graceful stop ran: tasks saved
        // journald's form: a syslog priority prefix (journald reads it as the line's level), no timestamp of the node's own.
        Assert.Contains("<6>Swarm.Node.ReadyReport[0] ready: control socket", node.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(" info: ", node.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutSystemdTheNodeLogsAsBefore()
    {
        using var dir = new TempDirectory();
        // Set empty: whatever runs these tests may itself be a systemd service.
        await using var node = SwarmProcess.StartWith(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = "", ["SYSTEMD_EXEC_PID"] = "" },
            "node", "--data-dir", dir.Combine("node"), "--listen", "127.0.0.1:0", "--metrics", "off", "--mirror", "off");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        node.Terminate();
        await node.WaitForExitAsync(Timeout);
        Assert.True(node.ExitCode == 0, node.ToString());
        string ready = node.Stderr.Split('\n').First(l => l.Contains("ready: control socket", StringComparison.Ordinal));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info: Swarm\.Node\.ReadyReport\[0\] ready: control socket ", ready);
        Assert.DoesNotContain("<6>", node.Stderr, StringComparison.Ordinal);
    }
}
