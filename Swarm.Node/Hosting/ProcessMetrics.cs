using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;

namespace Swarm.Node;

/// <summary>
/// The standard Prometheus process metrics (<c>process_cpu_seconds_total</c>, <c>process_start_time_seconds</c>,
/// <c>process_open_fds</c>, <c>process_max_fds</c>, <c>process_resident_memory_bytes</c>,
/// <c>process_virtual_memory_bytes</c>) from <c>/proc/self</c> and the runtime, and a few .NET runtime ones (GC, thread
/// pool). Written here rather than taken from OpenTelemetry's process instrumentation, which is a prerelease and names
/// them otherwise (<c>process.cpu.time</c>), or the runtime's own meter, whose names promtool rejects
/// (<c>dotnet_assembly_count</c> is a gauge).
/// </summary>
public static class ProcessMetrics
{
    private static readonly double StartTime = new DateTimeOffset(Process.GetCurrentProcess().StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000.0;

    public static void Register(Meter meter)
    {
        meter.CreateObservableCounter("process_cpu_seconds_total", () => Environment.CpuUsage.TotalTime.TotalSeconds, null, "Total user and system CPU time spent, in seconds.");
        meter.CreateObservableGauge("process_start_time_seconds", () => StartTime, null, "Start time of the process since the Unix epoch, in seconds.");
        meter.CreateObservableGauge("process_open_fds", OpenFds, null, "Open file descriptors.");
        meter.CreateObservableGauge("process_max_fds", MaxFds, null, "The limit on open file descriptors.");
        meter.CreateObservableGauge("process_resident_memory_bytes", () => Memory().Resident, null, "Resident set size, in bytes.");
        meter.CreateObservableGauge("process_virtual_memory_bytes", () => Memory().Virtual, null, "Virtual memory size, in bytes.");
        meter.CreateObservableGauge("dotnet_gc_heap_bytes", () => GC.GetGCMemoryInfo().HeapSizeBytes, null, "Managed heap size, as of the last collection.");
        meter.CreateObservableCounter("dotnet_gc_allocated_bytes_total", () => GC.GetTotalAllocatedBytes(), null, "Bytes allocated on the managed heap since start.");
        meter.CreateObservableCounter("dotnet_gc_pause_seconds_total", () => GC.GetTotalPauseDuration().TotalSeconds, null, "Time the runtime paused for garbage collections, in seconds.");
        meter.CreateObservableCounter("dotnet_gc_collections_total", Collections, null, "Garbage collections since start, by the oldest generation collected.");
        meter.CreateObservableGauge("dotnet_threadpool_threads", () => ThreadPool.ThreadCount, null, "Thread-pool threads.");
        meter.CreateObservableGauge("dotnet_threadpool_queued_items", () => ThreadPool.PendingWorkItemCount, null, "Work items queued for the thread pool.");
        meter.CreateObservableCounter("dotnet_threadpool_completed_items_total", () => ThreadPool.CompletedWorkItemCount, null, "Work items the thread pool completed since start.");
    }

    private static IEnumerable<Measurement<long>> OpenFds()
    {
        if (!Directory.Exists("/proc/self/fd")) yield break;
        yield return new(Directory.EnumerateFileSystemEntries("/proc/self/fd").LongCount());
    }

    private static IEnumerable<Measurement<long>> MaxFds()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/self/limits");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }
        // "Max open files            1048576              1048576              files": the soft limit.
        var line = lines.FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        var fields = line?["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields is { Length: > 0 } && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out long limit)) yield return new(limit);
    }

    /// <summary>Resident and virtual size: <c>/proc/self/statm</c> (pages) where there is one, else the runtime's view.</summary>
    private static (long Resident, long Virtual) Memory()
    {
        try
        {
            var fields = File.ReadAllText("/proc/self/statm").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long page = Environment.SystemPageSize;
            return (long.Parse(fields[1], CultureInfo.InvariantCulture) * page, long.Parse(fields[0], CultureInfo.InvariantCulture) * page);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            using var process = Process.GetCurrentProcess();
            return (process.WorkingSet64, process.VirtualMemorySize64);
        }
    }

    private static IEnumerable<Measurement<long>> Collections()
    {
        // GC.CollectionCount(n) counts collections of generation n or older: each collection is counted once, by its oldest.
        int gen2 = GC.CollectionCount(2), gen1 = GC.CollectionCount(1), gen0 = GC.CollectionCount(0);
        yield return new(gen0 - gen1, new KeyValuePair<string, object?>("generation", "gen0"));
        yield return new(gen1 - gen2, new KeyValuePair<string, object?>("generation", "gen1"));
        yield return new(gen2, new KeyValuePair<string, object?>("generation", "gen2"));
    }
}
