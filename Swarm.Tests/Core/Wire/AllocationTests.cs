using Swarm.Core.Identity;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Wire;

/// <summary>Tests that measure the process's allocations run alone, so other tests do not pollute the numbers.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationCollection
{
    public const string Name = "allocation measurements";
}

/// <summary>A frame that claims to be huge is refused from its prefix: the node never allocates anything near the claimed size.</summary>
[Collection(AllocationCollection.Name)]
public sealed class AllocationTests
{
    private const long Budget = 64L * 1024 * 1024;

    [Theory]
    [InlineData(MessageKind.Hello)]
    [InlineData(MessageKind.Hashes)]
    [InlineData(MessageKind.Block)]
    public async Task Four_GiB_length_prefix_before_the_handshake_allocates_almost_nothing(MessageKind kind)
    {
        await using var seed = await SeededNode.StartAsync();
        long before = GC.GetTotalAllocatedBytes(precise: true);
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.SendIgnoringResetAsync(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, (byte)kind });
            // Keep sending (as an attacker would) while the node should already have closed.
            await peer.SendIgnoringResetAsync(new byte[256 * 1024]);
            Assert.Empty(await peer.WaitForCloseAsync(TimeSpan.FromSeconds(5)));
        }
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < Budget, $"{allocated:N0} bytes allocated while refusing a 4 GiB frame");
        await seed.AssertStillServesAsync();
    }

    [Fact]
    public async Task Four_GiB_length_prefix_after_the_handshake_allocates_almost_nothing()
    {
        await using var seed = await SeededNode.StartAsync();
        using var key = NodeKey.Generate();
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.HandshakeAsync(key, seed.Id);
            await peer.ExpectFrameAsync(MessageKind.HaveAll, TimeSpan.FromSeconds(5));
            long before = GC.GetTotalAllocatedBytes(precise: true);
            await peer.SendIgnoringResetAsync(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, (byte)MessageKind.Block });
            await peer.SendIgnoringResetAsync(new byte[256 * 1024]);
            Assert.Empty(await peer.WaitForCloseAsync(TimeSpan.FromSeconds(5)));
            long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            Assert.True(allocated < Budget, $"{allocated:N0} bytes allocated while refusing a 4 GiB frame");
        }
        await seed.AssertStillServesAsync();
    }
}
