using Swarm.Core.Sources;
using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Exchange;
using Swarm.Node;
using Swarm.Node.Mirror;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Mirror;

/// <summary>The digest side of the mirror, in process: pointers published again, the digest index surviving a restart.</summary>
[Collection(DhtNetworkCollection.Name)]
public class OciContentTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly IPEndPoint Loopback = new(IPAddress.Loopback, 0);

    [Fact]
    public async Task HeldDigestsArePublishedAgainAndTheIndexSurvivesARestart()
    {
        using var dir = new TempDirectory();
        var blob = new byte[3 * 1024 * 1024 + 5];
        new Random(85).NextBytes(blob);
        string digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(blob));
        File.WriteAllBytes(dir.Combine("blob"), blob);

        await using var other = await LocalNode.StartAsync(dir.Combine("other"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct);
        var holder = await LocalNode.StartAsync(dir.Combine("holder"), new EngineOptions(), NullLogger.Instance, Loopback, [other.EndPoint!], Ct);
        try
        {
            var content = await Ingest.FileAsync(holder.Store, dir.Combine("blob"), holder.Key, null, Ct);
            await holder.ServeAsync(content, Ct);
            using (var oci = new OciContent(holder, dir.Combine("holder", "mirror"), NullLogger.Instance))
            {
                // Nothing is published for a digest the node does not hold.
                Assert.Equal(0, await oci.RepublishAsync(Ct));
                Assert.Null(await TaskPointers.ResolveAsync(other, OciContent.TaskKey(digest), Ct));

                oci.Remember(digest, content.Id);
                Assert.Equal(1, await oci.RepublishAsync(Ct));
                var pointer = await TaskPointers.ResolveAsync(other, OciContent.TaskKey(digest), Ct);
                Assert.Equal(content.Id, pointer?.Id);
                Assert.False(pointer?.Live);
            }
            // A new OciContent over the same directory (a restarted node) knows the digest from its index.
            using (var again = new OciContent(holder, dir.Combine("holder", "mirror"), NullLogger.Instance))
            {
                Assert.Equal(content.Id, again.Local(digest)?.Id);
                Assert.Equal(1, await again.RepublishAsync(Ct));
            }
            // Removed from the store: not held any more, so not published and not served.
            await holder.RemoveAsync(content.Id);
            using (var after = new OciContent(holder, dir.Combine("holder", "mirror"), NullLogger.Instance))
            {
                Assert.Null(after.Local(digest));
                Assert.Equal(0, await after.RepublishAsync(Ct));
            }
        }
        finally
        {
            await holder.DisposeAsync();
        }
    }
}
