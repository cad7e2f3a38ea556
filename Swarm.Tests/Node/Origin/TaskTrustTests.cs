using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Sources;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Origin;

/// <summary>Which pointer a fetch believes, against a real HTTP origin answering the probe.</summary>
public class TaskTrustTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static async Task<OriginValidators> CurrentAsync(CountingOrigin origin, string path)
    {
        var probe = await OriginProbe.RunAsync(new Uri(origin.Url(path)), [], TimeSpan.FromSeconds(5), Ct);
        Assert.Equal(OriginProbeOutcome.Current, probe.Outcome);
        return probe.Validators!;
    }

    private static TaskPointer Pointer(OriginValidators v, Hash256? publisher = null, long sequence = 1, bool live = false) =>
        new(new ContentId(Hash256.Random()), live, v, publisher ?? Hash256.Random(), sequence);

    [Fact]
    public async Task OnlyPointersMatchingTheOriginsCurrentVersionAreUsedWhateverTheirSequence()
    {
        await using var origin = new CountingOrigin();
        var body = Bytes(1000, 1);
        origin.Serve("/f", body);
        var current = await CurrentAsync(origin, "/f");
        Assert.Equal(1000, current.Length);
        Assert.NotNull(current.ETag);
        var honest = Pointer(current with { Sha256 = Hash256.Of(body) }, sequence: 10);
        var stale = Pointer(current with { ETag = "\"old\"" }, sequence: long.MaxValue / 2);
        var shorter = Pointer(current with { Length = 999 }, sequence: long.MaxValue / 2);
        var trust = new TaskTrust(new Uri(origin.Url("/f")), "the URL", [], new HashSet<Hash256>(), null);
        Assert.Same(honest, await trust.ChooseAsync([stale, honest, shorter], Ct));
        Assert.Null(await trust.ChooseAsync([stale, shorter], Ct));
        Assert.Contains("another version", trust.LastNote, StringComparison.Ordinal);
        Assert.Equal(2, origin.HeadRequests); // the test's own probe, then one for the fetch however often it reads pointers
    }

    [Fact]
    public async Task PointersThatAgreeWithTheOriginButNotOnTheBytesAreNotUsed()
    {
        await using var origin = new CountingOrigin();
        origin.Serve("/f", Bytes(1000, 2));
        var current = await CurrentAsync(origin, "/f");
        var a = Pointer(current with { Sha256 = Hash256.Random() }, sequence: 1);
        var b = Pointer(current with { Sha256 = Hash256.Random() }, sequence: 2); // a copied validator, other bytes
        var trust = new TaskTrust(new Uri(origin.Url("/f")), "the URL", [], new HashSet<Hash256>(), null);
        Assert.Null(await trust.ChooseAsync([a, b], Ct));
        Assert.Contains("disagree", trust.LastNote, StringComparison.Ordinal);
        // A live pointer (no SHA-256 yet) beside a sealed one is no disagreement; the sealed one is preferred.
        var live = Pointer(current, sequence: 9, live: true);
        Assert.Same(a, await trust.ChooseAsync([live, a], Ct));
    }

    [Fact]
    public async Task WithTheOriginDownOnlyTrustedPublishersOrADigestMakeAPointerUsable()
    {
        var origin = new CountingOrigin();
        origin.Serve("/f", Bytes(1000, 3));
        var current = await CurrentAsync(origin, "/f");
        var url = new Uri(origin.Url("/f"));
        await origin.DisposeAsync(); // connection refused from now on
        using var seedKey = NodeKey.Generate();
        var content = Hash256.Random();
        var byTrusted = Pointer(current with { Sha256 = content }, seedKey.NodeId, sequence: 1);
        var byOther = Pointer(current with { Sha256 = Hash256.Random() }, sequence: 5);

        var untrusting = new TaskTrust(url, "the URL", [], new HashSet<Hash256>(), null);
        var error = await Assert.ThrowsAsync<PeerUnavailableException>(() => untrusting.ChooseAsync([byTrusted, byOther], Ct));
        Assert.Contains("--digest", error.Message, StringComparison.Ordinal);
        Assert.Contains("trusted-publishers", error.Message, StringComparison.Ordinal);
        Assert.Contains("refused", error.Message, StringComparison.Ordinal);
        Assert.Null(await untrusting.ChooseAsync([], Ct)); // nothing to believe or not: the origin path gives its own error

        var trusting = new TaskTrust(url, "the URL", [], new HashSet<Hash256> { seedKey.NodeId }, null);
        Assert.Same(byTrusted, await trusting.ChooseAsync([byOther, byTrusted], Ct));
        Assert.Null(await trusting.ChooseAsync([byOther], Ct)); // when set, only theirs count

        var withDigest = new TaskTrust(url, "the URL", [], new HashSet<Hash256>(), content);
        Assert.Same(byTrusted, await withDigest.ChooseAsync([byOther, byTrusted], Ct)); // the one claiming the digest
    }

    [Fact]
    public async Task AnOriginThatRefusesTheUrlMakesEveryPointerUnusable()
    {
        await using var origin = new CountingOrigin();
        var trust = new TaskTrust(new Uri(origin.Url("/missing")), "the URL", [], new HashSet<Hash256>(), null);
        Assert.Null(await trust.ChooseAsync([Pointer(new OriginValidators(10, null, null, null))], Ct));
        Assert.Contains("404", trust.LastNote, StringComparison.Ordinal);
    }

    [Fact]
    public void LeasesAreBelievedForOneLifetimeFromFirstSightAndSilentHoldersAreDropped()
    {
        using var forger = NodeKey.Generate();
        var self = Hash256.Random();
        var trust = new TaskTrust(null, "the URL", [], new HashSet<Hash256>(), null);
        var lease = Swarm.Core.Dht.SignedRecord.Create(forger, Hash256.Random(), forger.NodeId.ToArray(), 7, DateTimeOffset.UtcNow.AddHours(24));
        var t0 = DateTime.UtcNow;
        Assert.Equal([forger.NodeId], trust.LiveLeases([lease], self, t0));
        Assert.Equal([forger.NodeId], trust.LiveLeases([lease], self, t0 + ColdStartLease.Lifetime));
        Assert.Empty(trust.LiveLeases([lease], self, t0 + ColdStartLease.Lifetime + TimeSpan.FromSeconds(1))); // 24 h claimed, 15 s believed

        // A holder that keeps renewing but never publishes a pointer is waited for only through the grace period.
        var renewing = new TaskTrust(null, "the URL", [], new HashSet<Hash256>(), null);
        Assert.True(renewing.StillWaitingFor(forger.NodeId, t0));
        Assert.True(renewing.StillWaitingFor(forger.NodeId, t0 + TaskTrust.HolderGrace));
        Assert.False(renewing.StillWaitingFor(forger.NodeId, t0 + TaskTrust.HolderGrace + TimeSpan.FromSeconds(1)));
        var renewed = Swarm.Core.Dht.SignedRecord.Create(forger, lease.Key, forger.NodeId.ToArray(), 8, DateTimeOffset.UtcNow.AddHours(24));
        Assert.Empty(renewing.LiveLeases([renewed], self, t0 + TimeSpan.FromSeconds(7)));

        // With trusted publishers set, only their leases (and this node's own) take part in the election.
        using var seedKey = NodeKey.Generate();
        var strict = new TaskTrust(null, "the URL", [], new HashSet<Hash256> { seedKey.NodeId }, null);
        var ownLease = Swarm.Core.Dht.SignedRecord.Create(seedKey, lease.Key, seedKey.NodeId.ToArray(), 1, DateTimeOffset.UtcNow.AddSeconds(15));
        Assert.Equal([seedKey.NodeId], strict.LiveLeases([lease, ownLease], self, t0));
    }

    [Fact]
    public void TrustedPublishersTakeIdsPublicKeyFilesAndNodeKeys()
    {
        using var dir = new TempDirectory();
        using var key = NodeKey.LoadOrCreate(dir.Combine("seed"));
        using var ecdsa = System.Security.Cryptography.ECDsa.Create();
        ecdsa.ImportSubjectPublicKeyInfo(key.PublicKey, out _);
        File.WriteAllText(dir.Combine("seed.pem"), ecdsa.ExportSubjectPublicKeyInfoPem());
        File.WriteAllBytes(dir.Combine("seed.der"), key.PublicKey);
        using var other = NodeKey.Generate();
        var ids = TrustedPublishers.Parse($"{dir.Combine("seed", "node.key")}, {dir.Combine("seed.pem")},{dir.Combine("seed.der")}, {other.NodeId.ToHex()}");
        Assert.Equal(new HashSet<Hash256> { key.NodeId, other.NodeId }, ids);
        Assert.Empty(TrustedPublishers.Parse(""));
        var bad = Assert.Throws<FormatException>(() => TrustedPublishers.Parse("not-an-id"));
        Assert.Contains("node id", bad.Message, StringComparison.Ordinal);
        File.WriteAllText(dir.Combine("junk"), "hello");
        Assert.Throws<FormatException>(() => TrustedPublishers.Parse(dir.Combine("junk")));
        var config = Assert.Throws<ConfigException>(() => NodeConfig.Load(dir.Path, new Dictionary<string, string?> { ["trusted-publishers"] = "zz" }, new Dictionary<string, string>()));
        Assert.Contains("--trusted-publishers", config.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SwarmIdPrintsTheIdThatTrustedPublishersReadFromItsPublicKey()
    {
        using var dir = new TempDirectory();
        await using var id = await SwarmProcess.RunAsync(TimeSpan.FromSeconds(60), "id", "--data-dir", dir.Combine("d"), "--public-key", dir.Combine("pub.pem"));
        Assert.True(id.ExitCode == 0, id.ToString());
        var printed = id.Stdout.Trim();
        Assert.Equal(TrustedPublishers.FromKeyFile(dir.Combine("pub.pem")).ToHex(), printed);
        Assert.Equal(TrustedPublishers.FromKeyFile(dir.Combine("d", "node.key")).ToHex(), printed);
        Assert.DoesNotContain("PRIVATE", File.ReadAllText(dir.Combine("pub.pem")), StringComparison.Ordinal);
    }
}
