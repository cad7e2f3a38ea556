using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Swarm.Core.Wire;

namespace Swarm.Benchmarks;

/// <summary>
/// Shared settings: BenchmarkDotNet's ShortRun job (1 launch, 3 warm-ups, 3 iterations) as the default, so the whole
/// assembly runs in a few minutes; a job given on the command line (<c>--job medium</c>) replaces it. Adds a MB/s column.
/// </summary>
public sealed class BenchConfig : ManualConfig
{
    public BenchConfig()
    {
        AddJob(Job.ShortRun.AsDefault());
        AddColumn(new ThroughputColumn());
    }
}

/// <summary>Payload bytes handled per second (10^6 bytes/s), from each benchmark's bytes per operation and its mean time.</summary>
public sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);
    public string ColumnName => "MB/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Bytes handled per second, in 10^6 bytes/s: frame bytes (prefix included) for frame suites, piece bytes for hashing and writing";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        long bytes = BytesPerOperation(benchmarkCase);
        if (stats == null || bytes <= 0 || stats.Mean <= 0) return "-";
        return (bytes / stats.Mean * 1e9 / 1e6).ToString("N0", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static long BytesPerOperation(BenchmarkCase benchmarkCase)
    {
        if (benchmarkCase.Descriptor.Type == typeof(BlockWriteBenchmarks)) return 1024 * 1024;
        if (benchmarkCase.Descriptor.Type == typeof(VerifiedReadBenchmarks)) return VerifiedReadBenchmarks.Length;
        if (benchmarkCase.Descriptor.Type == typeof(TransportBenchmarks)) return TransportBenchmarks.Length;
        foreach (var p in benchmarkCase.Parameters.Items)
        {
            if (p.Name == nameof(PieceHashBenchmarks.PieceSize) && p.Value is int size) return size;
            if (p.Name == nameof(FrameEncodeBenchmarks.Kind) && p.Value is MessageKind kind) return FrameCorpus.FrameLength(kind);
        }
        return 0;
    }
}
