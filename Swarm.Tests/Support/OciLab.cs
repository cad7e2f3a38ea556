using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Swarm.Tests.Support;

// Test support for the OCI registry mirror: images written as OCI layouts, a real registry (docker-registry), skopeo to
// push, and containerd as the real mirror client. Everything binds to 127.0.0.1, is bounded by timeouts and is removed
// on dispose. The tools come from Debian packages that .ci/run installs.

/// <summary>One blob of an image: its digest and size (for a layer also the digest of the uncompressed tar).</summary>
public sealed record OciBlob(string Digest, long Size, string? DiffId = null)
{
    /// <summary>The lowercase hex part of the digest (the file name under blobs/sha256/).</summary>
    public string Hex => Digest["sha256:".Length..];
}

/// <summary>An image written by <see cref="OciImage.WriteLayout"/>.</summary>
public sealed record OciImageInfo(string LayoutDirectory, string Tag, OciBlob Manifest, OciBlob Config, IReadOnlyList<OciBlob> Layers)
{
    public string ManifestDigest => Manifest.Digest;
    public string ConfigDigest => Config.Digest;
    /// <summary>Every blob a pull fetches: manifest, config and layers.</summary>
    public IEnumerable<OciBlob> AllBlobs => [Manifest, Config, .. Layers];
    /// <summary>The bytes of manifest, config and layers together.</summary>
    public long TotalBytes => AllBlobs.Sum(b => b.Size);
    /// <summary>The bytes of a blob as written in the layout.</summary>
    public byte[] Read(OciBlob blob) => File.ReadAllBytes(Path.Combine(LayoutDirectory, "blobs", "sha256", blob.Hex));
}

/// <summary>Writes OCI image layouts whose bytes (and so digests) are the same on every run.</summary>
public static class OciImage
{
    public const string ManifestType = "application/vnd.oci.image.manifest.v1+json";
    public const string ConfigType = "application/vnd.oci.image.config.v1+json";
    public const string LayerType = "application/vnd.oci.image.layer.v1.tar+gzip";

    private static readonly DateTimeOffset FixedTime = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Writes an OCI image layout into <paramref name="dir"/> (created if needed) tagged "v1": one gzip'd tar layer per
    /// size, each holding one file of that many pseudo-random bytes from <paramref name="seed"/>; a linux/amd64 config
    /// with the layers' diff_ids; the manifest; index.json and oci-layout. Layers are streamed to disk (large images
    /// take no memory).
    /// </summary>
    public static OciImageInfo WriteLayout(string dir, int seed, params int[] layerSizes)
    {
        const string Tag = "v1";
        string blobs = Path.Combine(dir, "blobs", "sha256");
        Directory.CreateDirectory(blobs);
        var layers = new List<OciBlob>();
        for (int i = 0; i < layerSizes.Length; i++) layers.Add(WriteLayer(blobs, $"layer{i}", $"data-{seed}-{i}.bin", layerSizes[i], unchecked(seed * 7919 + i)));
        var inv = CultureInfo.InvariantCulture;
        string config = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"SWARM_TEST_SEED=" + seed.ToString(inv) + "\"]},"
            + "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[" + string.Join(",", layers.Select(l => $"\"{l.DiffId}\"")) + "]}}";
        var configBlob = WriteBlob(blobs, Encoding.UTF8.GetBytes(config));
        string manifest = "{\"schemaVersion\":2,\"mediaType\":\"" + ManifestType + "\","
            + $"\"config\":{{\"mediaType\":\"{ConfigType}\",\"digest\":\"{configBlob.Digest}\",\"size\":{configBlob.Size.ToString(inv)}}},"
            + "\"layers\":[" + string.Join(",", layers.Select(l => $"{{\"mediaType\":\"{LayerType}\",\"digest\":\"{l.Digest}\",\"size\":{l.Size.ToString(inv)}}}")) + "]}";
        var manifestBlob = WriteBlob(blobs, Encoding.UTF8.GetBytes(manifest));
        File.WriteAllText(Path.Combine(dir, "oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        File.WriteAllText(Path.Combine(dir, "index.json"), "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" + ManifestType + "\","
            + $"\"digest\":\"{manifestBlob.Digest}\",\"size\":{manifestBlob.Size.ToString(inv)},"
            + "\"annotations\":{\"org.opencontainers.image.ref.name\":\"" + Tag + "\"}}]}");
        return new OciImageInfo(dir, Tag, manifestBlob, configBlob, layers);
    }

    public static string Digest(ReadOnlySpan<byte> data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    private static OciBlob WriteBlob(string blobs, byte[] bytes)
    {
        string digest = Digest(bytes);
        File.WriteAllBytes(Path.Combine(blobs, digest["sha256:".Length..]), bytes);
        return new OciBlob(digest, bytes.Length);
    }

    /// <summary>tar (directory + one file, fixed metadata) → gzip (fastest) → file, hashing the tar and the gzip on the way.</summary>
    private static OciBlob WriteLayer(string blobs, string directory, string fileName, long length, int seed)
    {
        string temp = Path.Combine(blobs, $".{directory}-{Guid.NewGuid():N}.tmp");
        using var tarHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var gzHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size;
        using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
        {
            using var compressed = new HashingStream(file, gzHash);
            using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
            using (var tar = new HashingStream(gzip, tarHash))
            using (var writer = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
            {
                writer.WriteEntry(new UstarTarEntry(TarEntryType.Directory, directory + "/")
                {
                    ModificationTime = FixedTime,
                    Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute,
                    Uid = 0,
                    Gid = 0,
                    UserName = "root",
                    GroupName = "root",
                });
                using var content = new RandomStream(length, seed);
                writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, directory + "/" + fileName)
                {
                    ModificationTime = FixedTime,
                    Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                    Uid = 0,
                    Gid = 0,
                    UserName = "root",
                    GroupName = "root",
                    DataStream = content,
                });
            }
            size = compressed.Written;
        }
        string digest = "sha256:" + Convert.ToHexStringLower(gzHash.GetHashAndReset());
        string diffId = "sha256:" + Convert.ToHexStringLower(tarHash.GetHashAndReset());
        File.Move(temp, Path.Combine(blobs, digest["sha256:".Length..]), overwrite: true);
        return new OciBlob(digest, size, diffId);
    }

    /// <summary>Pseudo-random bytes from a seed, read once from start to end (seekable only in name, so TarWriter knows the length).</summary>
    private sealed class RandomStream(long length, int seed) : Stream
    {
        // The seeded Random is the legacy algorithm: the same bytes on every run and platform, however the reads are cut.
        private readonly Random _random = new(seed);
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position
        {
            get => _position;
            set { if (value != _position) throw new NotSupportedException("a random stream reads forward only"); }
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, length - _position);
            _random.NextBytes(buffer[..n]);
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            long target = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => _position + offset, _ => length + offset };
            Position = target;
            return _position;
        }

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Hashes and counts what is written through it to another stream (which it does not own).</summary>
    private sealed class HashingStream(Stream inner, IncrementalHash hash) : Stream
    {
        public long Written { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Written; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            inner.Write(buffer);
            Written += buffer.Length;
        }

        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>How a finished external command ended.</summary>
public sealed record LabProcessResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    public bool Succeeded => ExitCode == 0;
    public override string ToString() => $"{Command}: exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";

    public LabProcessResult EnsureSuccess() => Succeeded ? this : throw new InvalidOperationException(ToString());
}

/// <summary>Starts and runs the lab's external tools with their output captured, always bounded by a timeout.</summary>
public sealed class LabProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private LabProcess(Process process, string command)
    {
        _process = process;
        Command = command;
    }

    public string Command { get; }
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>Throws a message naming the package and .ci/run when <paramref name="tool"/> is not on the PATH.</summary>
    public static string Require(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string path = Path.Combine(dir, tool);
            if (File.Exists(path)) return path;
        }
        throw new InvalidOperationException($"'{tool}' is not installed. The registry mirror tests need docker-registry, skopeo, containerd, podman and docker.io: " +
            ".ci/run installs them (apt-get install -y --no-install-recommends docker-registry skopeo containerd podman docker.io).");
    }

    public static LabProcess Start(string tool, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(Require(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var process = new Process { StartInfo = psi };
        var lab = new LabProcess(process, tool + " " + string.Join(' ', psi.ArgumentList));
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (lab._stdout) lab._stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (lab._stderr) lab._stderr.AppendLine(e.Data); };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return lab;
    }

    /// <summary>Runs a command to completion; killed (and a TimeoutException thrown) when it takes longer than <paramref name="timeout"/>.</summary>
    public static async Task<LabProcessResult> RunAsync(string tool, IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        await using var p = Start(tool, args, environment);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p._process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill();
            throw new TimeoutException($"{p.Command} did not finish within {timeout.TotalSeconds:0} s\nstdout: {p.Stdout}\nstderr: {p.Stderr}");
        }
        return new LabProcessResult(p.Command, p._process.ExitCode, p.Stdout, p.Stderr);
    }

    public void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } catch (System.ComponentModel.Win32Exception) { }
    }

    /// <summary>Kills the process and waits (at most <paramref name="timeout"/>) until it is gone.</summary>
    public async Task KillAndWaitAsync(TimeSpan timeout)
    {
        Kill();
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"{Command} (pid {_process.Id}) did not exit within {timeout.TotalSeconds:0} s of SIGKILL"); }
        catch (InvalidOperationException) { }
    }

    public async ValueTask DisposeAsync()
    {
        try { await KillAndWaitAsync(TimeSpan.FromSeconds(10)); } catch (TimeoutException) { }
        _process.Dispose();
    }
}

/// <summary>
/// A real registry: <c>docker-registry serve</c> (distribution 2.8) on 127.0.0.1 with filesystem storage in a temp
/// directory, optionally a pull-through cache of another registry.
/// </summary>
public sealed class DockerRegistry : IAsyncDisposable
{
    private readonly TempDirectory _dir;
    private LabProcess _process;

    private DockerRegistry(TempDirectory dir, LabProcess process, int port)
    {
        _dir = dir;
        _process = process;
        Port = port;
    }

    public int Port { get; }
    /// <summary>"127.0.0.1:PORT", as in image references and <c>?ns=</c>.</summary>
    public string Host => $"127.0.0.1:{Port}";
    public string Url => $"http://{Host}";
    public string StorageDirectory => _dir.Combine("data");
    /// <summary>The registry's own output (its log).</summary>
    public string Output => _process.Stdout + _process.Stderr;
    public bool Stopped { get; private set; }

    /// <summary>
    /// Starts a registry and waits (at most <paramref name="timeout"/>, default 30 s) until <c>GET /v2/</c> answers 200.
    /// With <paramref name="proxyRemoteUrl"/> (e.g. another registry's <see cref="Url"/>) it is a pull-through cache.
    /// </summary>
    public static async Task<DockerRegistry> StartAsync(string? proxyRemoteUrl = null, TimeSpan? timeout = null)
    {
        LabProcess.Require("docker-registry");
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var clock = Stopwatch.StartNew();
        var dir = new TempDirectory();
        string lastFailure = "";
        try
        {
            for (int attempt = 0; attempt < 3; attempt++)
            {
                int port = FreePort.Get();
                string config = dir.Combine("config.yml");
                File.WriteAllText(config,
                    "version: 0.1\n" +
                    "log: {level: warn}\n" +
                    $"storage: {{filesystem: {{rootdirectory: {dir.Combine("data")}}}, delete: {{enabled: true}}}}\n" +
                    $"http: {{addr: 127.0.0.1:{port}}}\n" +
                    (proxyRemoteUrl != null ? $"proxy: {{remoteurl: {proxyRemoteUrl}}}\n" : ""));
                var process = LabProcess.Start("docker-registry", ["serve", config]);
                var registry = new DockerRegistry(dir, process, port);
                if (await registry.WaitUntilServingAsync(limit - clock.Elapsed)) return registry;
                lastFailure = registry.Output;
                await process.DisposeAsync(); // most likely the port was taken meanwhile: try another one
                if (clock.Elapsed > limit) break;
            }
        }
        catch
        {
            dir.Dispose();
            throw;
        }
        dir.Dispose();
        throw new TimeoutException($"docker-registry did not answer GET /v2/ within {limit.TotalSeconds:0} s: {lastFailure}");
    }

    private async Task<bool> WaitUntilServingAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout && !_process.HasExited)
        {
            try
            {
                using var response = await http.GetAsync($"{Url}/v2/");
                if (response.StatusCode == HttpStatusCode.OK) return true;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(50);
        }
        return false;
    }

    /// <summary>Kills the registry and waits until it is gone (the upstream-is-down scenario). Its storage stays until dispose.</summary>
    public async Task StopAsync()
    {
        Stopped = true;
        await _process.KillAndWaitAsync(TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary><c>skopeo copy</c> with its own HOME, XDG directories and a policy that accepts everything (no system policy needed).</summary>
public static class Skopeo
{
    private static readonly Lazy<(string Policy, Dictionary<string, string> Environment)> Setup = new(() =>
    {
        // One directory per test run (the policy and empty config files); removed when the test process exits.
        string dir = Path.Combine(Path.GetTempPath(), "swarm-skopeo-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { } };
        string policy = Path.Combine(dir, "policy.json");
        File.WriteAllText(policy, "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}");
        var env = new Dictionary<string, string>
        {
            ["HOME"] = dir,
            ["XDG_CONFIG_HOME"] = Path.Combine(dir, "config"),
            ["XDG_DATA_HOME"] = Path.Combine(dir, "data"),
            ["XDG_CACHE_HOME"] = Path.Combine(dir, "cache"),
            ["XDG_RUNTIME_DIR"] = Path.Combine(dir, "run"),
            ["TMPDIR"] = Path.Combine(dir, "tmp"),
        };
        foreach (var d in env.Values) Directory.CreateDirectory(d);
        return (policy, env);
    });

    /// <summary>
    /// <c>skopeo copy SRC DEST</c> (e.g. <c>oci:DIR:v1</c>, <c>docker://127.0.0.1:PORT/demo/app:v1</c>) without TLS
    /// verification; killed after <paramref name="timeout"/>.
    /// </summary>
    public static Task<LabProcessResult> CopyAsync(string src, string dest, TimeSpan timeout)
    {
        var (policy, env) = Setup.Value;
        return LabProcess.RunAsync("skopeo", ["--policy", policy, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", src, dest], timeout, env);
    }

    /// <summary>Pushes the layout's "v1" image to <paramref name="destination"/> ("127.0.0.1:PORT/demo/app:v1"); throws when skopeo fails.</summary>
    public static async Task PushLayoutAsync(string layoutDir, string destination, TimeSpan? timeout = null)
    {
        var result = await CopyAsync($"oci:{layoutDir}:v1", "docker://" + destination, timeout ?? TimeSpan.FromSeconds(60));
        result.EnsureSuccess();
    }
}

/// <summary>
/// containerd 1.6 with its own root, state and sockets under a short /tmp/ctrd-XXXXXXXX path (unix socket paths must
/// stay under about 100 characters), the CRI plugin off, and a hosts directory for registry mirrors. Killed and
/// removed on dispose.
/// </summary>
public sealed class Containerd : IAsyncDisposable
{
    public const string Namespace = "swarmtest";
    private readonly LabProcess _process;

    private Containerd(string dir, LabProcess process)
    {
        BaseDirectory = dir;
        _process = process;
    }

    public string BaseDirectory { get; }
    public string Root => Path.Combine(BaseDirectory, "root");
    public string State => Path.Combine(BaseDirectory, "state");
    public string Socket => Path.Combine(BaseDirectory, "sock");
    public string HostsDirectory => Path.Combine(BaseDirectory, "hosts");
    public string Output => _process.Stdout + _process.Stderr;

    /// <summary>Starts containerd and waits (at most <paramref name="timeout"/>, default 30 s) until <c>ctr version</c> succeeds.</summary>
    public static async Task<Containerd> StartAsync(TimeSpan? timeout = null)
    {
        LabProcess.Require("containerd");
        LabProcess.Require("ctr");
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        string dir = "/tmp/ctrd-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(dir);
        Directory.CreateDirectory(Path.Combine(dir, "hosts"));
        string config = Path.Combine(dir, "c.toml");
        File.WriteAllText(config,
            "version = 2\n" +
            $"root = \"{dir}/root\"\n" +
            $"state = \"{dir}/state\"\n" +
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n" +
            "[grpc]\n" +
            $"  address = \"{dir}/sock\"\n" +
            "[ttrpc]\n" +
            $"  address = \"{dir}/sock.ttrpc\"\n" +
            "[plugins.\"io.containerd.internal.v1.opt\"]\n" +
            $"  path = \"{dir}/opt\"\n");
        LabProcess process;
        try
        {
            process = LabProcess.Start("containerd", ["--config", config]);
        }
        catch
        {
            DeleteDirectory(dir);
            throw;
        }
        var containerd = new Containerd(dir, process);
        try
        {
            var clock = Stopwatch.StartNew();
            LabProcessResult? last = null;
            while (true)
            {
                if (process.HasExited) throw new InvalidOperationException($"containerd exited at start: {containerd.Output}");
                if (Path.Exists(containerd.Socket))
                {
                    last = await containerd.CtrAsync(["version"], TimeSpan.FromSeconds(10), withNamespace: false);
                    if (last.Succeeded) return containerd;
                }
                if (clock.Elapsed > limit) throw new TimeoutException($"containerd did not answer 'ctr version' within {limit.TotalSeconds:0} s\n{last}\ncontainerd: {containerd.Output}");
                await Task.Delay(100);
            }
        }
        catch
        {
            await containerd.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Writes <c>HOSTS/REGISTRY/hosts.toml</c>: <c>server = "http://REGISTRY"</c> and the mirror (e.g.
    /// "http://127.0.0.1:7401") for pull and resolve. containerd then asks the mirror first, with <c>?ns=REGISTRY</c>.
    /// </summary>
    public string WriteHostsToml(string registryHost, string mirrorUrl)
    {
        string dir = Path.Combine(HostsDirectory, registryHost);
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "hosts.toml");
        File.WriteAllText(path, $"server = \"http://{registryHost}\"\n\n[host.\"{mirrorUrl}\"]\n  capabilities = [\"pull\", \"resolve\"]\n");
        return path;
    }

    /// <summary><c>ctr image pull --hosts-dir HOSTS REF</c> in the swarmtest namespace; killed after <paramref name="timeout"/>.</summary>
    public Task<LabProcessResult> PullAsync(string reference, TimeSpan timeout) =>
        CtrAsync(["image", "pull", "--hosts-dir", HostsDirectory, reference], timeout);

    /// <summary>The digests in containerd's content store (<c>ctr content ls -q</c>).</summary>
    public async Task<IReadOnlyList<string>> ContentDigestsAsync(TimeSpan? timeout = null)
    {
        var result = (await CtrAsync(["content", "ls", "-q"], timeout ?? TimeSpan.FromSeconds(30))).EnsureSuccess();
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split(' ', '\t')[0])
            .Where(d => d.StartsWith("sha256:", StringComparison.Ordinal))
            .ToList();
    }

    /// <summary>Runs <c>ctr --address SOCK [-n swarmtest] ARGS</c>.</summary>
    public Task<LabProcessResult> CtrAsync(IEnumerable<string> args, TimeSpan timeout, bool withNamespace = true) =>
        LabProcess.RunAsync("ctr", ["--address", Socket, .. withNamespace ? new[] { "-n", Namespace } : [], .. args], timeout);

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        // Shims (none unless a container ran) name this containerd's socket on their command line.
        foreach (int pid in ProcessesMentioning(BaseDirectory))
        {
            try
            {
                using var shim = Process.GetProcessById(pid);
                shim.Kill(entireProcessTree: true);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await shim.WaitForExitAsync(wait.Token);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or OperationCanceledException) { }
        }
        // Unpacking mounts snapshots for a moment; a kill can leave some behind.
        foreach (string mount in MountsUnder(BaseDirectory).OrderByDescending(m => m.Length))
        {
            try { await LabProcess.RunAsync("umount", ["-l", mount], TimeSpan.FromSeconds(10)); }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException) { }
        }
        DeleteDirectory(BaseDirectory);
    }

    private static List<int> ProcessesMentioning(string text)
    {
        var pids = new List<int>();
        foreach (var proc in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == Environment.ProcessId) continue;
            try
            {
                string cmdline = File.ReadAllText(Path.Combine(proc, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text, StringComparison.Ordinal)) pids.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return pids;
    }

    private static List<string> MountsUnder(string dir)
    {
        var mounts = new List<string>();
        try
        {
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                var fields = line.Split(' ');
                if (fields.Length > 4 && (fields[4] == dir || fields[4].StartsWith(dir + "/", StringComparison.Ordinal))) mounts.Add(fields[4]);
            }
        }
        catch (IOException) { }
        return mounts;
    }

    private static void DeleteDirectory(string dir)
    {
        try { System.IO.Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
