using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Origin;

public class UplinkGuardTests
{
    [Theory]
    [InlineData(0L)]                 // no limit configured
    [InlineData(20L * 1024 * 1024)]  // a configured limit is never exceeded and comes back at the end
    public async Task UploadsAreCappedWhileTheIngestStarvesAndReleasedWhenItRecovers(long configured)
    {
        using var dir = new TempDirectory();
        using var key = NodeKey.Generate();
        await using var engine = new SwarmEngine(key, new ContentStore(dir.Path), new EngineOptions { UploadRate = configured });
        const double mb = 1024 * 1024;
        using (var guard = new UplinkGuard(engine, tick: false))
        {
            using var ingest = guard.Enter(() => 0);
            guard.Observe(6 * mb, 6 * mb); // ingest at its best
            Assert.Equal(configured, engine.UploadRate);
            guard.Observe(1 * mb, 6 * mb); // the ingest collapses while the node uploads: cap at 85% of the upload
            Assert.Equal((long)(0.85 * 6 * mb), engine.UploadRate);
            guard.Observe(2 * mb, 5 * mb); // still starved: lower again
            Assert.Equal((long)(0.85 * 5 * mb), engine.UploadRate);
            guard.Observe(6 * mb, 4 * mb); // recovered: +10% a second
            Assert.Equal((long)(0.85 * 5 * mb * 1.1), engine.UploadRate);
            guard.Observe(1 * mb, 0);      // a slow origin with no uploads is not the uplink's fault: no change
            Assert.Equal((long)(0.85 * 5 * mb * 1.1), engine.UploadRate);
        }
        Assert.Equal(configured, engine.UploadRate); // restored when the ingest ends
    }
}
