using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Swarm.Core.Content;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Mirror;

/// <summary>
/// Issue #13 at the registry mirror, as containerd would see it: a real registry, a real <c>swarm node</c> with
/// <c>--mirror</c>, a blob pulled through it, then a byte of the node's stored copy flipped with the modification time
/// put back (what a disk does). The mirror must never answer 200/206 with bytes that differ from the blob; the rot is
/// counted in <c>/metrics</c> and named in the log; and a later request gets the exact blob again (fetched again from
/// the upstream, since no peer holds it).
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public sealed partial class MirrorBitRotTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private const string Repository = "demo/rot";
    /// <summary>One layer of about 1.5 MiB of random bytes (gzip cannot shrink them): six 256 KiB pieces.</summary>
    private const int LayerBytes = 1536 * 1024 + 11;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [GeneratedRegex(@"(?m)^swarm_pieces_rotten_total (\d+)$")]
    private static partial Regex RottenMetric();

    /// <summary>A registry holding the image, a node whose mirror has it as upstream, and an HTTP client for both.</summary>
    private sealed class Lab : IAsyncDisposable
    {
        public required TempDirectory Dir { get; init; }
        public required DockerRegistry Registry { get; init; }
        public required SwarmProcess Node { get; init; }
        public required OciImageInfo Image { get; init; }
        public required int MirrorPort { get; init; }
        public required int MetricsPort { get; init; }
        public string DataDir => Dir.Combine("node");
        public HttpClient Http { get; } = new(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = TimeSpan.FromSeconds(5) })
        {
            Timeout = TimeSpan.FromSeconds(60),
        };
        public OciBlob Layer => Image.Layers[0];
        public string BlobUrl(OciBlob blob) => $"http://127.0.0.1:{MirrorPort}/v2/{Repository}/blobs/{blob.Digest}?ns={Uri.EscapeDataString(Registry.Host)}";

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            await Node.DisposeAsync();
            await Registry.DisposeAsync();
            Dir.Dispose();
        }
    }

    private static async Task<Lab> StartLabAsync(int seed)
    {
        var dir = new TempDirectory();
        DockerRegistry? registry = null;
        try
        {
            var image = OciImage.WriteLayout(dir.Combine("layout"), seed, LayerBytes);
            registry = await DockerRegistry.StartAsync();
            await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/{Repository}:v1", Timeout);
            for (int attempt = 0; ; attempt++)
            {
                int mirror = FreePort.Get(), metrics = FreePort.Get();
                var node = SwarmProcess.Start("node", "--data-dir", dir.Combine("node"), "--listen", "127.0.0.1:0", "--metrics", $"127.0.0.1:{metrics}",
                    "--mirror", $"127.0.0.1:{mirror}", "--upstream", registry.Host);
                await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
                if (!node.HasExited) return new Lab { Dir = dir, Registry = registry, Node = node, Image = image, MirrorPort = mirror, MetricsPort = metrics };
                await node.DisposeAsync(); // most likely a port was taken meanwhile
                if (attempt == 2) throw new InvalidOperationException($"the node exited at start: {node.Stderr}");
            }
        }
        catch
        {
            if (registry != null) await registry.DisposeAsync();
            dir.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One request read to the end of its body. Cut: the connection ended before Content-Length bytes arrived (the mirror
    /// aborts a response when it finds rot after the first byte).
    /// </summary>
    private static async Task<(HttpStatusCode Status, byte[] Body, bool Cut, HttpResponseMessage Response)> SendAsync(Lab lab, HttpMethod method, string url, string? range = null)
    {
        var request = new HttpRequestMessage(method, url);
        if (range != null) request.Headers.TryAddWithoutValidation("Range", range);
        var response = await lab.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        using var body = new MemoryStream();
        bool cut = false;
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(Ct);
            await stream.CopyToAsync(body, Ct);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            cut = true;
        }
        if (method != HttpMethod.Head && response.Content.Headers.ContentLength is { } length && body.Length != length) cut = true;
        return (response.StatusCode, body.ToArray(), cut, response);
    }

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values) : throw new Xunit.Sdk.XunitException($"no {name} header in {response}");

    /// <summary>GETs the blob (or a range of it) and asserts a complete, exact answer.</summary>
    private static async Task AssertServesExactlyAsync(Lab lab, OciBlob blob, (long From, long To)? range = null)
    {
        byte[] whole = lab.Image.Read(blob);
        var (status, body, cut, response) = await SendAsync(lab, HttpMethod.Get, lab.BlobUrl(blob), range is { } r ? $"bytes={r.From}-{r.To}" : null);
        using (response)
        {
            Assert.True((range == null ? HttpStatusCode.OK : HttpStatusCode.PartialContent) == status, $"{response}\nnode: {lab.Node.Stderr}");
            Assert.False(cut, "the body was cut");
            Assert.Equal(blob.Digest, Header(response, "Docker-Content-Digest"));
            if (range is { } rr) Assert.True(whole.AsSpan((int)rr.From, (int)(rr.To - rr.From + 1)).SequenceEqual(body), "the range's bytes differ from the blob's");
            else Assert.True(whole.AsSpan().SequenceEqual(body), "the body differs from the blob");
        }
    }

    /// <summary>
    /// The answer to a request over rotten bytes: a 503 with Retry-After, a cut body, or (the blob fetched again first) the
    /// exact bytes. Never a complete 200/206 whose bytes differ. Returns what happened, for the log of a failure.
    /// </summary>
    private static async Task<string> AssertNeverWrongAsync(Lab lab, OciBlob blob, (long From, long To)? range = null)
    {
        byte[] whole = lab.Image.Read(blob);
        var (status, body, cut, response) = await SendAsync(lab, HttpMethod.Get, lab.BlobUrl(blob), range is { } r ? $"bytes={r.From}-{r.To}" : null);
        using (response)
        {
            if (status == HttpStatusCode.ServiceUnavailable)
            {
                Assert.Equal("1", Header(response, "Retry-After"));
                using var error = JsonDocument.Parse(body);
                Assert.Equal("BLOB_UNKNOWN", error.RootElement.GetProperty("errors")[0].GetProperty("code").GetString());
                return "503";
            }
            Assert.True(status is HttpStatusCode.OK or HttpStatusCode.PartialContent, $"{response}\nnode: {lab.Node.Stderr}");
            var expected = range is { } rr ? whole.AsSpan((int)rr.From, (int)(rr.To - rr.From + 1)) : whole.AsSpan();
            if (cut)
            {
                // What did arrive before the cut must still be the blob's bytes (the rotten piece is never sent).
                Assert.True(body.Length < expected.Length, $"a cut body of {body.Length} bytes");
                Assert.True(expected[..body.Length].SequenceEqual(body), "bytes sent before the cut differ from the blob's");
                return "cut";
            }
            Assert.True(expected.SequenceEqual(body), $"a complete {(int)status} whose bytes differ from the blob (node: {lab.Node.Stderr})");
            return "exact";
        }
    }

    /// <summary>The blob's entry in the node's store, as <c>swarm ls --json</c> shows it: its content id and its data file.</summary>
    private static async Task<(string Id, string DataFile)> EntryAsync(Lab lab, OciBlob blob)
    {
        await using var ls = await SwarmProcess.RunAsync(Timeout, "ls", "--json", "--data-dir", lab.DataDir);
        Assert.True(ls.ExitCode == 0, ls.ToString());
        using var doc = JsonDocument.Parse(ls.Stdout);
        var entry = doc.RootElement.GetProperty("content").EnumerateArray()
            .Single(c => c.TryGetProperty("digest", out var d) && d.GetString() == blob.Digest && c.GetProperty("complete").GetBoolean());
        string id = entry.GetProperty("id").GetString()!;
        return (id, Path.Combine(lab.DataDir, "content", ContentId.Parse(id).Hex, "data"));
    }

    private static async Task<long> RottenCountAsync(Lab lab)
    {
        string text = await lab.Http.GetStringAsync($"http://127.0.0.1:{lab.MetricsPort}/metrics", Ct);
        var m = RottenMetric().Match(text);
        Assert.True(m.Success, text);
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Polls (bounded) until a GET answers with the exact blob (or range), then asserts it once more.</summary>
    private static async Task AssertServedAgainAsync(Lab lab, OciBlob blob, (long From, long To)? range = null)
    {
        byte[] whole = lab.Image.Read(blob);
        var seen = new List<string>();
        try
        {
            await Poll.UntilAsync(async () =>
            {
                var (status, body, cut, response) = await SendAsync(lab, HttpMethod.Get, lab.BlobUrl(blob), range is { } r ? $"bytes={r.From}-{r.To}" : null);
                using (response)
                {
                    seen.Add(cut ? $"{(int)status} cut" : ((int)status).ToString(CultureInfo.InvariantCulture));
                    var expected = range is { } rr ? whole.AsSpan((int)rr.From, (int)(rr.To - rr.From + 1)) : whole.AsSpan();
                    // Anything complete with the success status must be exact, refetched or not.
                    if (!cut && status is HttpStatusCode.OK or HttpStatusCode.PartialContent) Assert.True(expected.SequenceEqual(body), "a complete answer whose bytes differ from the blob");
                    return !cut && status == (range == null ? HttpStatusCode.OK : HttpStatusCode.PartialContent);
                }
            }, Timeout, $"the mirror to serve {blob.Digest} again");
        }
        catch (TimeoutException e)
        {
            // The answers and the log as they are now, not when the wait began.
            throw new TimeoutException($"{e.Message} (answers: {string.Join(", ", seen)}; node: {lab.Node.Stderr})", e);
        }
        await AssertServesExactlyAsync(lab, blob, range);
    }

    private static void AssertNodeHealthy(Lab lab)
    {
        Assert.False(lab.Node.HasExited, lab.Node.Stderr);
        Assert.DoesNotContain("unhandled exception", lab.Node.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("crit:", lab.Node.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_GET_of_a_blob_whose_stored_bytes_rotted_is_never_a_200_with_wrong_bytes_and_a_later_GET_is_the_exact_blob()
    {
        await using var lab = await StartLabAsync(seed: 41);
        var blob = lab.Layer;
        await AssertServesExactlyAsync(lab, blob); // from the upstream, into the node's store
        await AssertServesExactlyAsync(lab, blob); // from the node's own copy: every piece read (and its check units hashed) once more
        var (id, dataFile) = await EntryAsync(lab, blob);
        Assert.Equal(blob.Size, new FileInfo(dataFile).Length);
        Assert.Equal(0, await RottenCountAsync(lab));

        const int Piece = 4;
        Rot.FlipByte(dataFile, Piece * 256 * 1024 + 12345);
        string first = await AssertNeverWrongAsync(lab, blob);

        // The rot was found, counted and named, whatever the first answer was.
        await Poll.UntilAsync(async () => await RottenCountAsync(lab) >= 1, Timeout, "swarm_pieces_rotten_total to count the rotten piece");
        Assert.Contains($"piece {Piece} of {id} failed its hash check in the store", lab.Node.Stderr, StringComparison.Ordinal);

        await AssertServedAgainAsync(lab, blob);
        Assert.True(first is "cut" or "503" or "exact", first);
        AssertNodeHealthy(lab);
    }

    [Fact]
    public async Task A_range_over_a_rotten_piece_is_a_503_with_Retry_After_then_exact_and_HEAD_keeps_the_blobs_length_and_digest()
    {
        await using var lab = await StartLabAsync(seed: 43);
        var blob = lab.Layer;
        await AssertServesExactlyAsync(lab, blob);
        var (id, dataFile) = await EntryAsync(lab, blob);

        const int Piece = 2;
        long flipped = Piece * 256 * 1024 + 777;
        var range = (From: flipped - 10, To: flipped + 100_000);
        Rot.FlipByte(dataFile, flipped);
        // The range starts in the rotten piece: rot is found before the first byte, so the mirror says 503 (or, had it
        // already refetched, serves the exact bytes), never a 206 with the flipped byte.
        string answer = await AssertNeverWrongAsync(lab, blob, range);
        Assert.True(answer is "503" or "exact", answer);
        await Poll.UntilAsync(async () => await RottenCountAsync(lab) >= 1, Timeout, "swarm_pieces_rotten_total to count the rotten piece");
        Assert.Contains($"piece {Piece} of {id} failed its hash check in the store", lab.Node.Stderr, StringComparison.Ordinal);

        // HEAD reads no bytes: it answers from the blob's length and digest, rotten copy or not.
        var (status, body, _, head) = await SendAsync(lab, HttpMethod.Head, lab.BlobUrl(blob));
        using (head)
        {
            Assert.True(HttpStatusCode.OK == status, $"{head}\nnode: {lab.Node.Stderr}");
            Assert.Empty(body);
            Assert.Equal(blob.Size, head.Content.Headers.ContentLength);
            Assert.Equal(blob.Digest, Header(head, "Docker-Content-Digest"));
        }

        await AssertServedAgainAsync(lab, blob, range);
        await AssertServesExactlyAsync(lab, blob);
        AssertNodeHealthy(lab);
    }
}
