using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Swarm.Tests.Support;

/// <summary>One span as an OTLP collector received it (ids in lowercase hex; no parent: "").</summary>
public sealed record OtlpSpan(string Service, string TraceId, string SpanId, string ParentSpanId, string Name,
    IReadOnlyDictionary<string, string> Attributes, int StatusCode);

/// <summary>
/// An OpenTelemetry collector for tests: OTLP/HTTP with protobuf on 127.0.0.1 (Kestrel), <c>POST /v1/traces</c> decoded
/// far enough (<see cref="ProtoReader"/>) to know each span's service, ids, parent, name, string/int attributes and status.
/// </summary>
public sealed class OtlpCollector : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<OtlpSpan> _spans = new();

    private OtlpCollector(WebApplication app) => _app = app;

    public string Url { get; private set; } = "";
    public IReadOnlyList<OtlpSpan> Spans => [.. _spans];
    /// <summary>Export requests received (a batch exporter sends one per batch).</summary>
    public int Requests => Volatile.Read(ref _requests);
    private int _requests;

    public static async Task<OtlpCollector> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var collector = new OtlpCollector(app);
        app.MapPost("/v1/traces", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            foreach (var span in Decode(body.ToArray())) collector._spans.Enqueue(span);
            Interlocked.Increment(ref collector._requests);
            context.Response.ContentType = "application/x-protobuf";
            context.Response.ContentLength = 0; // an empty ExportTraceServiceResponse: all accepted
        });
        await app.StartAsync();
        collector.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return collector;
    }

    /// <summary>ExportTraceServiceRequest: resource_spans = 1 → resource = 1 (attributes = 1), scope_spans = 2 → spans = 2.</summary>
    public static List<OtlpSpan> Decode(ReadOnlySpan<byte> request)
    {
        var spans = new List<OtlpSpan>();
        var reader = new ProtoReader(request);
        while (!reader.End)
        {
            var (field, wire) = reader.ReadTag();
            if (field != 1 || wire != 2) { reader.Skip(wire); continue; }
            var resourceSpans = new ProtoReader(reader.ReadBytes());
            string service = "";
            var scopes = new List<byte[]>();
            while (!resourceSpans.End)
            {
                var (f, w) = resourceSpans.ReadTag();
                if (f == 1 && w == 2) service = Attributes(Fields(resourceSpans.ReadBytes(), 1)).GetValueOrDefault("service.name", "");
                else if (f == 2 && w == 2) scopes.Add(resourceSpans.ReadBytes().ToArray());
                else resourceSpans.Skip(w);
            }
            foreach (var scope in scopes)
                foreach (var span in Fields(scope, 2)) spans.Add(Span(service, span));
        }
        return spans;
    }

    /// <summary>Span: trace_id 1, span_id 2, parent_span_id 4, name 5, attributes 9, status 15 (code 3).</summary>
    private static OtlpSpan Span(string service, byte[] data)
    {
        var reader = new ProtoReader(data);
        string trace = "", id = "", parent = "", name = "";
        var attributes = new List<byte[]>();
        int status = 0;
        while (!reader.End)
        {
            var (f, w) = reader.ReadTag();
            switch (f)
            {
                case 1 when w == 2: trace = Convert.ToHexStringLower(reader.ReadBytes()); break;
                case 2 when w == 2: id = Convert.ToHexStringLower(reader.ReadBytes()); break;
                case 4 when w == 2: parent = Convert.ToHexStringLower(reader.ReadBytes()); break;
                case 5 when w == 2: name = reader.ReadString(); break;
                case 9 when w == 2: attributes.Add(reader.ReadBytes().ToArray()); break;
                case 15 when w == 2:
                    var s = new ProtoReader(reader.ReadBytes());
                    while (!s.End)
                    {
                        var (sf, sw) = s.ReadTag();
                        if (sf == 3 && sw == 0) status = (int)s.ReadVarint();
                        else s.Skip(sw);
                    }
                    break;
                default: reader.Skip(w); break;
            }
        }
        return new OtlpSpan(service, trace, id, parent, name, Attributes(attributes), status);
    }

    /// <summary>KeyValue: key 1, value 2 → AnyValue: string 1, bool 2, int 3 (others are left out).</summary>
    private static Dictionary<string, string> Attributes(IEnumerable<byte[]> keyValues)
    {
        var result = new Dictionary<string, string>();
        foreach (var kv in keyValues)
        {
            var reader = new ProtoReader(kv);
            string key = "", value = "";
            while (!reader.End)
            {
                var (f, w) = reader.ReadTag();
                if (f == 1 && w == 2) key = reader.ReadString();
                else if (f == 2 && w == 2)
                {
                    var any = new ProtoReader(reader.ReadBytes());
                    while (!any.End)
                    {
                        var (af, aw) = any.ReadTag();
                        if (af == 1 && aw == 2) value = any.ReadString();
                        else if (af is 2 or 3 && aw == 0) value = af == 2 ? (any.ReadVarint() != 0).ToString() : ((long)any.ReadVarint()).ToString(CultureInfo.InvariantCulture);
                        else any.Skip(aw);
                    }
                }
                else reader.Skip(w);
            }
            result[key] = value;
        }
        return result;
    }

    /// <summary>Every length-delimited occurrence of <paramref name="field"/> in a message.</summary>
    private static List<byte[]> Fields(ReadOnlySpan<byte> message, int field)
    {
        var found = new List<byte[]>();
        var reader = new ProtoReader(message);
        while (!reader.End)
        {
            var (f, w) = reader.ReadTag();
            if (f == field && w == 2) found.Add(reader.ReadBytes().ToArray());
            else reader.Skip(w);
        }
        return found;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
