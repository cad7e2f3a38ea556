using System.Diagnostics;
using System.Diagnostics.Metrics;
using Swarm.Core;

namespace Swarm.Node;

/// <summary>
/// The node's event instruments (recorded as things finish: tasks, mirror requests), on the meter
/// <see cref="MeterName"/>. Labels take fixed values only: a kind, an outcome, a result, a configured registry host or
/// "other" — never a URL, a digest or a peer address.
/// </summary>
public static class NodeInstruments
{
    public const string MeterName = "Swarm.Node";

    private static readonly Meter Meter = new(MeterName, Telemetry.Version);

    private static readonly double[] RequestSeconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    private static readonly Counter<long> TasksFinished = Meter.CreateCounter<long>("swarm_tasks_finished_total", null,
        "Tasks that ended, by kind (get, seed) and outcome (done, failed, cancelled, interrupted).");

    private static readonly Histogram<double> TaskDuration = Meter.CreateHistogram<double>("swarm_task_duration_seconds", "s",
        "Time from a task's start to its end, by kind and outcome.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800] });

    private static readonly Counter<long> MirrorRequests = Meter.CreateCounter<long>("swarm_mirror_requests_total", null,
        "Registry mirror manifest and blob requests, by kind, registry and result (swarm, upstream, miss, error).");

    private static readonly Histogram<double> MirrorDuration = Meter.CreateHistogram<double>("swarm_mirror_request_duration_seconds", "s",
        "Time from a mirror request to the end of its response, by kind, registry and result.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = RequestSeconds });

    private static readonly Histogram<double> MirrorFirstByte = Meter.CreateHistogram<double>("swarm_mirror_first_byte_seconds", "s",
        "Time from a mirror request to the start of its response (headers, then the first bytes), by kind, registry and result.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = RequestSeconds });

    /// <summary>A task ended.</summary>
    public static void TaskFinished(TaskKind kind, TaskState outcome, TimeSpan duration)
    {
        var tags = new TagList { { "kind", kind == TaskKind.Get ? "get" : "seed" }, { "outcome", StateLabel(outcome) } };
        TasksFinished.Add(1, tags);
        TaskDuration.Record(duration.TotalSeconds, tags);
    }

    /// <summary>A mirror manifest or blob request was answered.</summary>
    public static void MirrorAnswered(bool manifest, string registry, string result, TimeSpan duration, TimeSpan firstByte)
    {
        var tags = new TagList { { "kind", manifest ? "manifest" : "blob" }, { "registry", registry }, { "result", result } };
        MirrorRequests.Add(1, tags);
        MirrorDuration.Record(duration.TotalSeconds, tags);
        MirrorFirstByte.Record(firstByte.TotalSeconds, tags);
    }

    /// <summary>A task state as the control API and the labels write it (running, done, failed, cancelled, interrupted).</summary>
    public static string StateLabel(TaskState state) => state switch
    {
        TaskState.Running => "running",
        TaskState.Done => "done",
        TaskState.Failed => "failed",
        TaskState.Cancelled => "cancelled",
        _ => "interrupted",
    };
}
