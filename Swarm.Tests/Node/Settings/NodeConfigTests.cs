using System.Collections;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Settings;

public class NodeConfigTests
{
    [Fact]
    public void FlagsWinOverTheEnvironmentWhichWinsOverSwarmJsonWhichWinsOverDefaults()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("swarm.json"), """
            { "quota": "1GiB", "upload-rate": "1MiB/s", "task-ttl": "2d", "bootstrap": ["10.0.0.1:7400", "10.0.0.2:7400"] }
            """);
        var env = new Hashtable { ["SWARM_UPLOAD_RATE"] = "2MiB/s", ["SWARM_TASK_TTL"] = "12h" };
        var flags = new Dictionary<string, string?> { ["task-ttl"] = "30m" };
        var c = NodeConfig.Load(dir.Path, flags, env);
        Assert.Equal(1L << 30, c.Quota);                       // file
        Assert.Equal(2L << 20, c.UploadRate);                  // env over file
        Assert.Equal(TimeSpan.FromMinutes(30), c.TaskTtl);     // flag over env and file
        Assert.Equal(2, c.Bootstrap.Count);                    // a JSON array
        Assert.Equal("127.0.0.1:7402", c.Metrics!.ToString()); // default
        Assert.True(c.MetricsIsDefault);
        Assert.Equal(0.9, c.HighWatermark);
        Assert.Equal(Path.Combine(dir.Path, "swarm.sock"), c.ControlSocket);
    }

    [Theory]
    [InlineData("max-connections", "0", "max-connections")]
    [InlineData("high-watermark", "1.5", "high-watermark")]
    [InlineData("listen", "nowhere", "listen")]
    [InlineData("log-level", "loud", "log-level")]
    [InlineData("low-watermark", "0.95", "low-watermark")]
    public void ABadValueNamesTheSettingAndItsSource(string name, string value, string expected)
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<ConfigException>(() => NodeConfig.Load(dir.Path, new Dictionary<string, string?> { [name] = value }, new Hashtable()));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TracingIsOffUnlessAnOtlpEndpointIsSetByFlagEnvironmentSwarmJsonOrOpenTelemetrysOwnVariable()
    {
        using var dir = new TempDirectory();
        var none = new Dictionary<string, string?>();
        Assert.Null(NodeConfig.Load(dir.Path, none, new Hashtable()).Otlp);
        // OTLP/HTTP: a bare collector address gets /v1/traces; a path given is kept.
        var flag = NodeConfig.Load(dir.Path, new Dictionary<string, string?> { ["otlp-endpoint"] = "http://127.0.0.1:4318" }, new Hashtable()).Otlp!;
        Assert.Equal(("http://127.0.0.1:4318/v1/traces", false), (flag.TracesEndpoint.ToString(), flag.Grpc));
        var env = NodeConfig.Load(dir.Path, none, new Hashtable { ["SWARM_OTLP_ENDPOINT"] = "https://collector.example:4318/custom/traces" }).Otlp!;
        Assert.Equal("https://collector.example:4318/custom/traces", env.TracesEndpoint.ToString());
        File.WriteAllText(dir.Combine("swarm.json"), """{ "otlp-endpoint": "http://127.0.0.1:9999" }""");
        Assert.Equal("http://127.0.0.1:9999/v1/traces", NodeConfig.Load(dir.Path, none, new Hashtable()).Otlp!.TracesEndpoint.ToString());
        File.Delete(dir.Combine("swarm.json"));
        // Not set at all: OpenTelemetry's standard variables; "off" turns even those off.
        var standard = new Hashtable { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317", ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc" };
        var grpc = NodeConfig.Load(dir.Path, none, standard).Otlp!;
        Assert.Equal(("http://127.0.0.1:4317/", true), (grpc.TracesEndpoint.ToString(), grpc.Grpc));
        Assert.Null(NodeConfig.Load(dir.Path, new Dictionary<string, string?> { ["otlp-endpoint"] = "off" }, standard).Otlp);
        foreach (var bad in new[] { "127.0.0.1:4318", "ftp://127.0.0.1/", "http://user:secret@127.0.0.1:4318" })
        {
            var e = Assert.Throws<ConfigException>(() => NodeConfig.Load(dir.Path, new Dictionary<string, string?> { ["otlp-endpoint"] = bad }, new Hashtable()));
            Assert.Contains("--otlp-endpoint", e.Message, StringComparison.Ordinal);
            Assert.Contains("collector", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void AnUnknownKeyOrBrokenJsonInSwarmJsonIsAnError()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("swarm.json"), """{ "qouta": "1GiB" }""");
        var e = Assert.Throws<ConfigException>(() => NodeConfig.Load(dir.Path, new Dictionary<string, string?>(), new Hashtable()));
        Assert.Contains("unknown setting \"qouta\"", e.Message, StringComparison.Ordinal);
        File.WriteAllText(dir.Combine("swarm.json"), """{ "quota": """);
        e = Assert.Throws<ConfigException>(() => NodeConfig.Load(dir.Path, new Dictionary<string, string?>(), new Hashtable()));
        Assert.Contains("not valid JSON", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("500ms", 0.5)]
    [InlineData("30s", 30)]
    [InlineData("10m", 600)]
    [InlineData("12h", 43200)]
    [InlineData("7d", 604800)]
    [InlineData("90", 90)]
    [InlineData(" 1.5H ", 5400)]
    public void DurationsReadTheSameEverywhere(string text, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), Quantities.ParseDuration(text));

    [Theory]
    [InlineData("")]
    [InlineData("soon")]
    [InlineData("-1s")]
    [InlineData("5w")]
    [InlineData("1e400s")]
    public void AMalformedDurationSaysHowToWriteOne(string text)
    {
        var e = Assert.Throws<FormatException>(() => Quantities.ParseDuration(text));
        Assert.Contains("30s", e.Message, StringComparison.Ordinal);
    }
}
