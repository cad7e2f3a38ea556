using System.Collections;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>
/// The node service's settings, each from (first found) a command-line flag, an environment variable
/// <c>SWARM_&lt;NAME&gt;</c>, the <c>swarm.json</c> file in the data directory, or its default. Validated as a whole at
/// start: a bad value stops the node with a message naming the setting and where the value came from.
/// </summary>
public sealed record NodeConfig
{
    public const string FileName = "swarm.json";

    /// <summary>Every setting: its name (flag without dashes, JSON key), environment variable and default.</summary>
    public static readonly IReadOnlyList<(string Name, string Env, string Default, string Help)> Settings =
    [
        ("listen", "SWARM_LISTEN", "0.0.0.0:7400", "address for peers, TCP and UDP (DHT)"),
        ("bootstrap", "SWARM_BOOTSTRAP", "", "DHT nodes to join through, IP:PORT or HOST:PORT (every address of the name, looked up at each join), comma-separated"),
        ("metrics", "SWARM_METRICS", "127.0.0.1:7402", "address of /metrics and /healthz, or 'off'"),
        ("mirror", "SWARM_MIRROR", "127.0.0.1:7401", "address of the OCI registry mirror for containerd, or 'off'"),
        ("upstream", "SWARM_UPSTREAM", "docker.io", "registry the mirror pulls from when a request names none (containerd sends ?ns=)"),
        ("registry-config", "SWARM_REGISTRY_CONFIG", "", "JSON file of registry credentials (default registries.json in the data directory)"),
        ("upload-rate", "SWARM_UPLOAD_RATE", "0", "upload limit (e.g. 100mbit, 10MiB/s; 0 = none)"),
        ("download-rate", "SWARM_DOWNLOAD_RATE", "0", "download limit (0 = none)"),
        ("quota", "SWARM_QUOTA", "0", "disk space for content (e.g. 50GiB; 0 = no limit)"),
        ("high-watermark", "SWARM_HIGH_WATERMARK", "0.9", "evict when usage passes this fraction of the quota"),
        ("low-watermark", "SWARM_LOW_WATERMARK", "0.8", "evict down to this fraction of the quota"),
        ("task-ttl", "SWARM_TASK_TTL", "0", "evict content unused for this long (e.g. 7d, 12h; 0 = never)"),
        ("max-connections", "SWARM_MAX_CONNECTIONS", "256", "peer connections at most, all content together"),
        ("log-level", "SWARM_LOG_LEVEL", "information", "debug, information, warning or error"),
        ("trusted-publishers", "SWARM_TRUSTED_PUBLISHERS", "", "node ids or key files of the seed hosts whose URL pointers are used without the origin (comma-separated); when set, only theirs"),
        ("swarm-key", "SWARM_SWARM_KEY", "", "key file of a private swarm, mode 0600 ('swarm keygen FILE' writes one; copy it to every member); empty = open swarm"),
        ("peer-encryption", "SWARM_PEER_ENCRYPTION", "on", "encrypt peer traffic (ECDH + AES-128-GCM, pinned to node ids): on, or off where nobody else can see the network; all members must agree"),
        ("lab-loopback", "SWARM_LAB_LOOPBACK", "off", "test swarms on one host: loopback peers are exempt from per-address limits (never needed in production)"),
        ("mirror-registries", "SWARM_MIRROR_REGISTRIES", "*", "registries the mirror may fetch from when a client names one with ?ns= (comma-separated hosts; * = any)"),
        ("otlp-endpoint", "SWARM_OTLP_ENDPOINT", "", "OpenTelemetry collector for the spans of tasks and mirror requests, e.g. http://127.0.0.1:4318 (OTLP/HTTP); empty = OTEL_EXPORTER_OTLP_ENDPOINT, else off"),
    ];

    public required string DataDirectory { get; init; }
    public required IPEndPoint Listen { get; init; }
    public BootstrapList Bootstrap { get; init; } = BootstrapList.Empty;
    public IPEndPoint? Metrics { get; init; }
    /// <summary>The metrics address was not configured: when it is taken (another node on this host), run without.</summary>
    public bool MetricsIsDefault { get; init; }
    public IPEndPoint? Mirror { get; init; }
    /// <summary>The mirror address was not configured: when it is taken (another node on this host), run without.</summary>
    public bool MirrorIsDefault { get; init; }
    public string Upstream { get; init; } = "docker.io";
    public string RegistryConfig { get; init; } = "";
    public long UploadRate { get; init; }
    public long DownloadRate { get; init; }
    public long Quota { get; init; }
    public double HighWatermark { get; init; } = 0.9;
    public double LowWatermark { get; init; } = 0.8;
    public TimeSpan TaskTtl { get; init; }
    public int MaxConnections { get; init; } = 256;
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Information;
    public IReadOnlySet<Swarm.Core.Content.Hash256> TrustedPublishers { get; init; } = new HashSet<Swarm.Core.Content.Hash256>();
    public PeerSecurity Security { get; init; } = new(null, true, false);
    /// <summary>Registries a client may send the mirror to with <c>?ns=</c>; null: any (the default).</summary>
    public IReadOnlySet<string>? MirrorRegistries { get; init; }
    /// <summary>Where spans are exported (OTLP); null: no tracing (the default).</summary>
    public OtlpTarget? Otlp { get; init; }

    /// <summary>The path of the control socket for a data directory.</summary>
    public static string SocketPath(string dataDirectory) => Path.Combine(dataDirectory, "swarm.sock");

    public string ControlSocket => SocketPath(DataDirectory);

    public EngineOptions EngineOptions() => Security.Apply(new EngineOptions
    {
        UploadRate = UploadRate,
        DownloadRate = DownloadRate,
        MaxConnections = MaxConnections,
    });

    public Swarm.Core.Dht.DhtOptions DhtOptions() => Security.Apply(new Swarm.Core.Dht.DhtOptions());

    /// <summary>Resolves every setting: <paramref name="flags"/> (name → value given on the command line), then the
    /// environment, then <c>swarm.json</c> in <paramref name="dataDirectory"/>, then the default.</summary>
    public static NodeConfig Load(string dataDirectory, IReadOnlyDictionary<string, string?> flags, IDictionary? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        var file = ReadFile(dataDirectory);
        foreach (var name in flags.Keys)
            if (!Settings.Any(s => s.Name == name)) throw new ConfigException($"unknown setting '{name}'");
        (string Value, string Source) Get(string name)
        {
            var setting = Settings.First(s => s.Name == name);
            if (flags.TryGetValue(name, out var flag) && flag != null) return (flag, "--" + name);
            if (environment[setting.Env] is string env && env.Length > 0) return (env, "environment variable " + setting.Env);
            if (file.TryGetValue(name, out var json)) return (json, $"\"{name}\" in {Path.Combine(dataDirectory, FileName)}");
            return (setting.Default, "default of " + name);
        }
        T Parse<T>(string name, Func<string, T> parse)
        {
            var (value, source) = Get(name);
            try
            {
                return parse(value.Trim());
            }
            catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
            {
                throw new ConfigException($"{source}: '{value}' is not valid for {name} ({Settings.First(s => s.Name == name).Help}): {e.Message}", e);
            }
        }
        var config = new NodeConfig
        {
            DataDirectory = dataDirectory,
            Listen = Parse("listen", EndPoints.Parse),
            Bootstrap = Parse("bootstrap", v => BootstrapList.Parse(v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))),
            Metrics = Parse("metrics", v => v.Equals("off", StringComparison.OrdinalIgnoreCase) ? null : EndPoints.Parse(v)),
            MetricsIsDefault = Get("metrics").Source.StartsWith("default", StringComparison.Ordinal),
            Mirror = Parse("mirror", v => v.Equals("off", StringComparison.OrdinalIgnoreCase) ? null : EndPoints.Parse(v)),
            MirrorIsDefault = Get("mirror").Source.StartsWith("default", StringComparison.Ordinal),
            Upstream = Parse("upstream", v => v.Length > 0 && !v.Contains('/', StringComparison.Ordinal) && !v.Contains(' ', StringComparison.Ordinal)
                ? v : throw new FormatException("write a registry host, e.g. docker.io or registry.example.com:5000")),
            RegistryConfig = Parse("registry-config", v => v.Length == 0 ? Path.Combine(dataDirectory, "registries.json") : Path.GetFullPath(v)),
            UploadRate = Parse("upload-rate", v => v == "0" ? 0 : Quantities.ParseRate(v)),
            DownloadRate = Parse("download-rate", v => v == "0" ? 0 : Quantities.ParseRate(v)),
            Quota = Parse("quota", v => v == "0" ? 0 : Quantities.ParseSize(v)),
            HighWatermark = Parse("high-watermark", Fraction),
            LowWatermark = Parse("low-watermark", Fraction),
            TaskTtl = Parse("task-ttl", v => v == "0" ? TimeSpan.Zero : Quantities.ParseDuration(v)),
            MaxConnections = Parse("max-connections", v => int.Parse(v, NumberStyles.None, CultureInfo.InvariantCulture) is var n and >= 1 and <= 100_000
                ? n : throw new ArgumentException("must be between 1 and 100000")),
            LogLevel = Parse("log-level", v => v.ToLowerInvariant() switch
            {
                "debug" => Microsoft.Extensions.Logging.LogLevel.Debug,
                "information" or "info" => Microsoft.Extensions.Logging.LogLevel.Information,
                "warning" or "warn" => Microsoft.Extensions.Logging.LogLevel.Warning,
                "error" => Microsoft.Extensions.Logging.LogLevel.Error,
                _ => throw new FormatException("write debug, information, warning or error"),
            }),
            TrustedPublishers = Parse("trusted-publishers", Swarm.Node.TrustedPublishers.Parse),
            Security = new PeerSecurity(Parse("swarm-key", PeerSecurity.ParseSwarmKey), Parse("peer-encryption", PeerSecurity.ParseOnOff), Parse("lab-loopback", PeerSecurity.ParseOnOff)),
            MirrorRegistries = Parse("mirror-registries", ParseRegistries),
            Otlp = Parse("otlp-endpoint", v => OtlpTarget.Parse(v, environment)),
        };
        if (config.Mirror != null && config.Metrics != null && config.Mirror.Equals(config.Metrics))
            throw new ConfigException($"mirror and metrics are both {config.Mirror}; give them different addresses");
        if (config.LowWatermark >= config.HighWatermark)
            throw new ConfigException($"low-watermark ({config.LowWatermark}) must be below high-watermark ({config.HighWatermark})");
        return config;
    }

    /// <summary>
    /// One setting resolved the same way (flag, environment, swarm.json, default) for commands that start an embedded node
    /// instead of the service; a bad value is a <see cref="ConfigException"/> naming where it came from.
    /// </summary>
    public static T LoadOne<T>(string dataDirectory, string name, string? flag, Func<string, T> parse, IDictionary? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        var setting = Settings.First(s => s.Name == name);
        (string value, string source) = flag != null ? (flag, "--" + name)
            : environment[setting.Env] is string env && env.Length > 0 ? (env, "environment variable " + setting.Env)
            : ReadFile(dataDirectory).TryGetValue(name, out var json) ? (json, $"\"{name}\" in {Path.Combine(dataDirectory, FileName)}")
            : (setting.Default, "default of " + name);
        try
        {
            return parse(value.Trim());
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            throw new ConfigException($"{source}: '{value}' is not valid for {name} ({setting.Help}): {e.Message}", e);
        }
    }

    private static HashSet<string>? ParseRegistries(string v)
    {
        var hosts = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (hosts.Contains("*")) return hosts.Length == 1 ? null : throw new FormatException("'*' (any registry) cannot be combined with hosts");
        if (hosts.Length == 0) throw new FormatException("name at least one registry host, or * for any");
        foreach (var h in hosts)
            if (h.Contains('/', StringComparison.Ordinal) || h.Contains(' ', StringComparison.Ordinal) || Uri.CheckHostName(h.Split(':')[0]) == UriHostNameType.Unknown)
                throw new FormatException($"'{h}' is not a registry host (write e.g. docker.io or registry.example.com:5000)");
        return new HashSet<string>(hosts.Select(h => h.ToLowerInvariant()), StringComparer.Ordinal);
    }

    private static double Fraction(string v)
    {
        double f = double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture);
        return f is > 0 and <= 1 ? f : throw new ArgumentException("must be a fraction between 0 and 1, e.g. 0.9");
    }

    private static Dictionary<string, string> ReadFile(string dataDirectory)
    {
        string path = Path.Combine(dataDirectory, FileName);
        var values = new Dictionary<string, string>();
        if (!File.Exists(path)) return values;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ConfigException($"{path}: expected a JSON object of settings");
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (!Settings.Any(s => s.Name == property.Name))
                    throw new ConfigException($"{path}: unknown setting \"{property.Name}\"; known settings: {string.Join(", ", Settings.Select(s => s.Name))}");
                values[property.Name] = property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString()!,
                    JsonValueKind.Number => property.Value.GetRawText(),
                    JsonValueKind.Array => string.Join(",", property.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText())),
                    JsonValueKind.True or JsonValueKind.False => property.Value.GetRawText(),
                    _ => throw new ConfigException($"{path}: \"{property.Name}\" must be a string, number or array"),
                };
            }
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path} is not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // A name or string that cannot be text (an escaped lone surrogate, \ud800): found by fuzzing.
            throw new ConfigException($"{path} holds a string that is not valid text (an escaped lone surrogate?): {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new ConfigException($"cannot read {path}: {e.Message}", e);
        }
        return values;
    }
}
