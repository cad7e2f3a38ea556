using System.CommandLine;
using System.Net;
using Swarm.Node;

namespace Swarm.Cli;

internal static class CommonOptions
{
    public static Option<string?> DataDir() => new("--data-dir")
    {
        Description = "Node data directory (key and content store). Default: $SWARM_DATA_DIR, else $XDG_DATA_HOME/swarm, else ~/.local/share/swarm.",
    };

    public static Option<string?> SwarmKey() => new("--swarm-key")
    {
        Description = "Key file of a private swarm (mode 0600; 'swarm keygen FILE' writes one): only members holding it are peers. " +
            "Default: $SWARM_SWARM_KEY, else \"swarm-key\" in swarm.json, else an open swarm. A running node uses its own setting.",
    };

    public static Option<string?> PeerEncryption() => new("--peer-encryption")
    {
        Description = "on (default) or off: encrypt peer traffic (ECDH + AES-128-GCM); all members must agree. Default: $SWARM_PEER_ENCRYPTION, else swarm.json, else on.",
    };

    public static Option<string?> OtlpEndpoint() => new("--otlp-endpoint")
    {
        Description = "Send this command's trace spans to an OpenTelemetry collector, e.g. http://127.0.0.1:4318 (OTLP/HTTP). " +
            "Default: $SWARM_OTLP_ENDPOINT, else \"otlp-endpoint\" in swarm.json, else $OTEL_EXPORTER_OTLP_ENDPOINT, else off. A running node uses its own setting.",
    };

    /// <summary>Starts exporting this process's spans as the otlp-endpoint setting says (null: off); dispose to send the rest.</summary>
    public static IDisposable? StartTracing(string dataDirectory, string? flag) =>
        NodeTelemetry.StartTracing(NodeConfig.LoadOne(dataDirectory, "otlp-endpoint", flag, v => OtlpTarget.Parse(v, Environment.GetEnvironmentVariables())));

    public static Option<bool> Verbose() => new("--verbose", "-v") { Description = "Log peer connections and protocol events to stderr." };

    public static Option<string?> Rate(string name, string what) => new(name)
    {
        Description = $"Limit {what} for this node, e.g. 100mbit, 12MiB/s, 10MB/s (default: unlimited).",
    };

    public static Option<IPEndPoint> Listen(string defaultValue) => new("--listen")
    {
        Description = $"Address to accept peers on, IP:PORT (port 0 picks a free one). Default {defaultValue}.",
        DefaultValueFactory = _ => EndPoints.Parse(defaultValue),
        CustomParser = r => ParseEndPoint(r.Tokens.Count > 0 ? r.Tokens[^1].Value : defaultValue, r),
    };

    public static Option<BootstrapList> Bootstrap() => new("--bootstrap")
    {
        Description = "A DHT node to join through, IP:PORT or HOST:PORT (repeatable; a name is looked up at each join, every address it has). Not needed once the node has a saved routing table.",
        CustomParser = r =>
        {
            try { return BootstrapList.Parse(r.Tokens.Select(t => t.Value)); }
            catch (FormatException e) { r.AddError(e.Message); return BootstrapList.Empty; }
        },
    };

    public static Option<IPEndPoint[]> Peers() => new("--peer")
    {
        Description = "A peer to fetch from directly, IP:PORT (repeatable); used besides the providers found in the DHT.",
        CustomParser = r => [.. r.Tokens.Select(t => ParseEndPoint(t.Value, r))],
    };

    public static Option<string?> Tag() => new("--tag") { Description = "Tells apart different content behind one URL (part of the task key)." };

    public static Option<string[]> Filters() => new("--filter")
    {
        Description = "A query parameter to leave out of the task key (repeatable), e.g. the signature of a signed URL.",
        AllowMultipleArgumentsPerToken = false,
    };

    public static Option<string[]> Headers() => new("--header", "-H")
    {
        Description = "A request header for the origin, 'Name: value' (repeatable).",
        AllowMultipleArgumentsPerToken = false,
    };

    public static IReadOnlyList<KeyValuePair<string, string>> ParseHeaders(string[]? headers) => OriginRequest.ParseHeaders(headers);

    /// <summary>An http(s) URL, or null when the text is something else (a file, a swarm:// id).</summary>
    public static Uri? AsUrl(string text) => OriginRequest.AsUrl(text);

    public static IPEndPoint ParseEndPoint(string text, System.CommandLine.Parsing.ArgumentResult result)
    {
        try
        {
            return EndPoints.Parse(text);
        }
        catch (FormatException e)
        {
            result.AddError(e.Message);
            return new IPEndPoint(IPAddress.Loopback, 0);
        }
    }

    /// <summary>A rate for a command-line option (null: unlimited), read as <see cref="Quantities.ParseRate"/> reads settings.</summary>
    public static long ParseRate(string? text, string option)
    {
        if (text == null) return 0;
        try
        {
            return Quantities.ParseRate(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"{option}: {e.Message}");
        }
    }
}
