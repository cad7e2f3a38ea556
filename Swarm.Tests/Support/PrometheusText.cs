using System.Globalization;
using System.Text.RegularExpressions;

namespace Swarm.Tests.Support;

/// <summary>One sample of a Prometheus text scrape: <c>name{labels} value</c>.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public bool Has(params (string Label, string Value)[] labels) => labels.All(l => Labels.TryGetValue(l.Label, out var v) && v == l.Value);
}

/// <summary>The samples of a Prometheus text-format scrape, with their labels, for tests to query.</summary>
public sealed partial class PrometheusText
{
    private PrometheusText(string text, List<PrometheusSample> samples)
    {
        Text = text;
        Samples = samples;
    }

    public string Text { get; }
    public IReadOnlyList<PrometheusSample> Samples { get; }

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex Label();

    public static PrometheusText Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var m = SampleLine().Match(line);
            if (!m.Success) throw new FormatException($"not a sample line: {line}");
            var labels = Label().Matches(m.Groups[2].Value).ToDictionary(l => l.Groups[1].Value, l => Regex.Unescape(l.Groups[2].Value));
            samples.Add(new PrometheusSample(m.Groups[1].Value, labels, double.Parse(m.Groups[3].Value, NumberStyles.Float, CultureInfo.InvariantCulture)));
        }
        return new PrometheusText(text, samples);
    }

    public static async Task<PrometheusText> ScrapeAsync(int port)
    {
        using var http = new HttpClient();
        return Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/metrics", TestContext.Current.CancellationToken));
    }

    /// <summary>The sum of the samples named <paramref name="name"/> that carry every one of <paramref name="labels"/> (0 when none).</summary>
    public double Sum(string name, params (string Label, string Value)[] labels) => Samples.Where(s => s.Name == name && s.Has(labels)).Sum(s => s.Value);

    /// <summary>Whether some sample is named <paramref name="name"/> and carries every one of <paramref name="labels"/>.</summary>
    public bool Contains(string name, params (string Label, string Value)[] labels) => Samples.Any(s => s.Name == name && s.Has(labels));

    /// <summary>The metric families present: sample names without a histogram's <c>_bucket</c>, <c>_sum</c> or <c>_count</c>.</summary>
    public IReadOnlySet<string> Families => Text.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal))
        .Select(l => l.Split(' ')[2]).ToHashSet(StringComparer.Ordinal);
}
