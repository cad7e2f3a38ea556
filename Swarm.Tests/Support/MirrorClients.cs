using System.Diagnostics;

namespace Swarm.Tests.Support;

/// <summary>
/// podman 4.3 with everything of its own under a temp directory: storage (vfs), run root, HOME, containers.conf,
/// a signature policy that accepts everything, and the registries.conf given by the test (CONTAINERS_REGISTRIES_CONF).
/// </summary>
public sealed class Podman : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly Dictionary<string, string> _environment;

    public Podman(string registriesConf)
    {
        foreach (var d in new[] { "home", "run", "tmp", "config" }) Directory.CreateDirectory(_dir.Combine(d));
        File.WriteAllText(_dir.Combine("containers.conf"), "");
        File.WriteAllText(_dir.Combine("policy.json"), "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}");
        _environment = new Dictionary<string, string>
        {
            ["HOME"] = _dir.Combine("home"),
            ["XDG_RUNTIME_DIR"] = _dir.Combine("run"),
            ["XDG_CONFIG_HOME"] = _dir.Combine("config"),
            ["TMPDIR"] = _dir.Combine("tmp"),
            ["CONTAINERS_CONF"] = _dir.Combine("containers.conf"),
            ["CONTAINERS_REGISTRIES_CONF"] = registriesConf,
        };
    }

    /// <summary><c>podman ARGS</c> with this instance's storage; killed after <paramref name="timeout"/>.</summary>
    public Task<LabProcessResult> RunAsync(TimeSpan timeout, params string[] args) =>
        LabProcess.RunAsync("podman",
            ["--root", _dir.Combine("root"), "--runroot", _dir.Combine("runroot"), "--storage-driver", "vfs", "--tmpdir", _dir.Combine("tmp"),
             "--cgroup-manager", "cgroupfs", "--events-backend", "file", .. args], timeout, _environment);

    /// <summary><c>podman pull REF</c> with the instance's signature policy.</summary>
    public Task<LabProcessResult> PullAsync(string reference, TimeSpan timeout) =>
        RunAsync(timeout, "pull", "--signature-policy", _dir.Combine("policy.json"), reference);

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// dockerd 20.10 started by hand: data root, exec root, pid file and API socket under a temp directory, vfs storage, no
/// iptables, no bridge, the daemon.json given by the test. It runs in a mount namespace of its own whose /etc/resolv.conf
/// names 127.0.0.1 (where no DNS server answers), so whatever the mirror fails to serve, dockerd cannot look up a
/// public name (registry-1.docker.io): its fallback fails instead.
/// </summary>
public sealed class Dockerd : IAsyncDisposable
{
    private readonly TempDirectory _dir;
    private readonly LabProcess _process;

    private Dockerd(TempDirectory dir, LabProcess process)
    {
        _dir = dir;
        _process = process;
    }

    public string Socket => "unix://" + _dir.Combine("docker.sock");
    public string Output => _process.Stdout + _process.Stderr;

    /// <summary>Starts dockerd with <paramref name="configFile"/> and waits (at most <paramref name="timeout"/>) until <c>docker version</c> answers.</summary>
    public static async Task<Dockerd> StartAsync(string configFile, TimeSpan timeout)
    {
        LabProcess.Require("dockerd");
        LabProcess.Require("docker");
        LabProcess.Require("unshare");
        var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("resolv.conf"), "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
        string dockerd = LabProcess.Require("dockerd");
        string script = $"mount --bind '{dir.Combine("resolv.conf")}' /etc/resolv.conf && exec '{dockerd}' --data-root '{dir.Combine("data")}' " +
            $"--exec-root '{dir.Combine("exec")}' --pidfile '{dir.Combine("docker.pid")}' -H 'unix://{dir.Combine("docker.sock")}' " +
            $"--storage-driver vfs --iptables=false --ip-masq=false --bridge=none --config-file '{configFile}'";
        var process = LabProcess.Start("unshare", ["--mount", "--propagation", "private", "sh", "-c", script]);
        var daemon = new Dockerd(dir, process);
        try
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (process.HasExited) throw new InvalidOperationException("dockerd exited at start: " + daemon.Output);
                var version = await daemon.DockerAsync(TimeSpan.FromSeconds(10), "version", "--format", "{{.Server.Version}}");
                if (version.Succeeded) return daemon;
                if (clock.Elapsed > timeout) throw new TimeoutException($"dockerd did not answer within {timeout.TotalSeconds:0} s: {version}\n{daemon.Output}");
                await Task.Delay(100);
            }
        }
        catch
        {
            await daemon.DisposeAsync();
            throw;
        }
    }

    /// <summary><c>docker -H SOCKET ARGS</c>, with a HOME of its own; killed after <paramref name="timeout"/>.</summary>
    public Task<LabProcessResult> DockerAsync(TimeSpan timeout, params string[] args)
    {
        Directory.CreateDirectory(_dir.Combine("home"));
        return LabProcess.RunAsync("docker", ["-H", Socket, .. args], timeout,
            new Dictionary<string, string> { ["HOME"] = _dir.Combine("home"), ["DOCKER_CONFIG"] = _dir.Combine("home", ".docker") });
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        _dir.Dispose();
    }
}
