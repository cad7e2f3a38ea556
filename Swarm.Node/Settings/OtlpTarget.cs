using System.Collections;

namespace Swarm.Node;

/// <summary>
/// Where the spans of tasks and mirror requests go: an OpenTelemetry collector speaking OTLP. Off by default; on with the
/// <c>otlp-endpoint</c> setting, or, when that is not set at all, OpenTelemetry's own <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>.
/// OTLP/HTTP with protobuf (a collector's port 4318) unless <c>OTEL_EXPORTER_OTLP_PROTOCOL</c> says <c>grpc</c>.
/// </summary>
public sealed record OtlpTarget(Uri Endpoint, bool Grpc)
{
    /// <summary>The URL spans are posted to: for OTLP/HTTP a bare collector address gets the standard <c>/v1/traces</c>.</summary>
    public Uri TracesEndpoint => Grpc || Endpoint.AbsolutePath.Length > 1 ? Endpoint : new Uri(Endpoint, "/v1/traces");

    /// <summary>
    /// The setting's value: an http(s) URL, <c>off</c>, or empty (not set: then <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> from
    /// <paramref name="environment"/>, if any). Null: no tracing. <see cref="FormatException"/> says what is wrong.
    /// </summary>
    public static OtlpTarget? Parse(string value, IDictionary environment)
    {
        if (value.Equals("off", StringComparison.OrdinalIgnoreCase)) return null;
        if (value.Length == 0)
        {
            if (environment["OTEL_EXPORTER_OTLP_ENDPOINT"] is not string standard || standard.Trim().Length == 0) return null;
            value = standard.Trim();
        }
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new FormatException("write the collector's URL, e.g. http://127.0.0.1:4318 (OTLP/HTTP), or off");
        if (uri.UserInfo.Length > 0 || uri.Query.Length > 0)
            throw new FormatException("write the collector's URL without user information or a query");
        string protocol = (environment["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] as string ?? environment["OTEL_EXPORTER_OTLP_PROTOCOL"] as string ?? "").Trim();
        return new OtlpTarget(uri, protocol.Equals("grpc", StringComparison.OrdinalIgnoreCase));
    }

    public override string ToString() => $"{TracesEndpoint} ({(Grpc ? "OTLP/gRPC" : "OTLP/HTTP")})";
}
