using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;

namespace Swarm.Core;

/// <summary>
/// Swarm's traces and metrics, through the .NET runtime's own types (<see cref="ActivitySource"/>,
/// <see cref="Meter"/>): what records them — the node's OpenTelemetry SDK, an OTLP exporter — is chosen by the host; with
/// nobody listening an instrument costs a flag check and a span is never created. Also the version the node reports
/// (<c>swarm_build_info</c>, the <c>User-Agent</c> of every request to an origin or registry).
/// </summary>
public static class Telemetry
{
    /// <summary>The name of the activity source and of Core's meter.</summary>
    public const string Name = "Swarm";

    private static readonly string Informational =
        typeof(Telemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    /// <summary>The release, e.g. 1.0.0 (without build metadata).</summary>
    public static string Version { get; } = Informational.Split('+')[0];

    /// <summary>The source revision the build was made from (the informational version's build metadata), or "".</summary>
    public static string Revision { get; } = Informational.Contains('+', StringComparison.Ordinal) ? Informational[(Informational.IndexOf('+', StringComparison.Ordinal) + 1)..] : "";

    /// <summary>The <c>User-Agent</c> of Swarm's HTTP requests: <c>swarm/VERSION</c>.</summary>
    public static string UserAgent { get; } = "swarm/" + Version;

    /// <summary>Spans of tasks (get, seed and their phases) and of mirror requests.</summary>
    public static ActivitySource Source { get; } = new(Name, Version);

    /// <summary>Core's instruments: those recorded where the work happens (piece checks, DHT lookups).</summary>
    public static Meter Meter { get; } = new(Name, Version);

    /// <summary>Seconds to hash-check a downloaded piece (by result: verified, failed); one record per piece, never per block.</summary>
    internal static Histogram<double> PieceVerification { get; } = Meter.CreateHistogram<double>("swarm_piece_verification_duration_seconds", "s",
        "Time to check a downloaded piece against its hash, by result.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] });

    /// <summary>Seconds an iterative DHT lookup took, by kind (find_node, get_providers, get_records).</summary>
    internal static Histogram<double> DhtLookup { get; } = Meter.CreateHistogram<double>("swarm_dht_lookup_duration_seconds", "s",
        "Duration of iterative DHT lookups this node ran, by kind.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });

    /// <summary>
    /// Starts the span of a new trace (a task, a mirror request), not a child of whatever span the caller's flow carries
    /// (a control-API request, another task's fetch). Null when no one records Swarm's spans.
    /// </summary>
    public static Activity? StartTrace(string name)
    {
        Activity.Current = null; // an async method's change: the caller's flow keeps its own
        return Source.StartActivity(name, ActivityKind.Internal);
    }

    /// <summary>
    /// Starts a child of <paramref name="parent"/> without making it the current span (phases that overlap, started and
    /// ended from one loop). Null when <paramref name="parent"/> is null or not recorded.
    /// </summary>
    public static Activity? StartChild(Activity? parent, string name)
    {
        if (parent is not { Recorded: true }) return null;
        var current = Activity.Current;
        var child = Source.StartActivity(name, ActivityKind.Internal, parent.Context);
        Activity.Current = current;
        return child;
    }

    /// <summary>Marks a span failed with a short, fixed description (never an exception's text: it can hold URLs and addresses).</summary>
    public static void Fail(this Activity? activity, string what) => activity?.SetStatus(ActivityStatusCode.Error, what);
}
