using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Swarm.Core;

namespace Swarm.Node;

/// <summary>
/// OpenTelemetry for the node service: its meters (<see cref="Telemetry"/>, <see cref="NodeInstruments"/>,
/// <see cref="NodeMetrics"/>) exposed as Prometheus text on <c>/metrics</c>, and, when an OTLP target is set, the spans
/// of <see cref="Telemetry.Source"/> exported in batches (flushed when the host stops). A <c>get</c> or <c>seed</c> that
/// runs its own node exports its spans through <see cref="StartTracing"/>.
/// </summary>
public static partial class NodeTelemetry
{
    public static void Add(WebApplicationBuilder builder, NodeConfig config)
    {
        builder.Services.AddSingleton<NodeMetrics>();
        var otel = builder.Services.AddOpenTelemetry().ConfigureResource(Describe);
        otel.WithMetrics(m => m.AddMeter(Telemetry.Name, NodeInstruments.MeterName, NodeMetrics.MeterName).AddPrometheusExporter(o =>
        {
            // No otel_scope_version label on every series: an upgrade would start a new series for each of them.
            o.ScopeInfoEnabled = false;
            o.TargetInfoEnabled = false;
            // Every scrape sees the counters as they are (a test reads them right after a transfer).
            o.ScrapeResponseCacheDurationMilliseconds = 0;
        }));
        if (config.Otlp is { } target) otel.WithTracing(t => Export(t, target));
    }

    /// <summary>Serves <c>/metrics</c> (Prometheus text format; OpenMetrics to a scraper that asks for it).</summary>
    public static void MapMetrics(WebApplication app)
    {
        app.Services.GetRequiredService<NodeMetrics>(); // its observable instruments exist from now on
        app.MapPrometheusScrapingEndpoint("/metrics", null, branch => branch.Use(WithoutEmptyLabelSetsAsync), null);
    }

    [GeneratedRegex(@"(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)\{\}(?= )")]
    private static partial Regex EmptyLabelSet();

    /// <summary>
    /// The exporter (1.20.1-beta.1) writes a series without labels as <c>name{} 5</c> when scope labels are off; valid, but
    /// <c>name 5</c> is what Prometheus clients write and what scripts grep for. The scrape (a few KiB) is rewritten so.
    /// </summary>
    private static async Task WithoutEmptyLabelSetsAsync(HttpContext context, RequestDelegate next)
    {
        var body = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            context.Response.Body = body;
        }
        byte[] text = Encoding.UTF8.GetBytes(EmptyLabelSet().Replace(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length), "$1"));
        context.Response.ContentLength = text.Length;
        await body.WriteAsync(text, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>
    /// Exports this process's spans to <paramref name="target"/> until disposed (null: no tracing); disposing sends what is
    /// left, waiting at most 5 s for the collector, so a short-lived command still delivers its spans.
    /// </summary>
    public static IDisposable? StartTracing(OtlpTarget? target) =>
        target == null ? null : new Tracing(Export(Sdk.CreateTracerProviderBuilder().ConfigureResource(Describe), target).Build());

    private static void Describe(ResourceBuilder resource) => resource.AddService("swarm", serviceVersion: Telemetry.Version);

    private static TracerProviderBuilder Export(TracerProviderBuilder traces, OtlpTarget target) =>
        traces.AddSource(Telemetry.Name).AddOtlpExporter(o =>
        {
            o.Endpoint = target.TracesEndpoint;
            o.Protocol = target.Grpc ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf;
            o.TimeoutMilliseconds = 5000;
        });

    private sealed class Tracing(TracerProvider provider) : IDisposable
    {
        public void Dispose()
        {
            provider.Shutdown(5000);
            provider.Dispose();
        }
    }
}
