using Swarm.Core.Storage;

namespace Swarm.Tests.Core.Storage;

/// <summary>
/// The at-rest check's keyed unit tags (<see cref="UnitTags"/>): any changed byte in any unit fails, a short last unit
/// works, and the memory they take is bounded by their budget and given back.
/// </summary>
public sealed class UnitTagsTests
{
    private const int Piece = 3 * UnitTags.Unit + 777; // three whole units and a short tail

    private static byte[] PieceBytes(int seed = 1)
    {
        var data = new byte[Piece];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Fact]
    public void A_recorded_piece_matches_itself_and_fails_on_any_changed_byte_in_any_unit()
    {
        using var tags = new UnitTags(4, new UnitTags.Budget(1 << 20));
        var data = PieceBytes();
        Assert.True(tags.Record(2, data));
        var t = tags.Of(2)!;
        Assert.Equal(4 * UnitTags.TagSize, t.Length);
        Assert.True(UnitTags.Matches(t, 0, data));
        Assert.True(UnitTags.Matches(t, 3, data.AsSpan(3 * UnitTags.Unit)), "the short tail alone");
        Assert.True(UnitTags.Matches(t, 1, data.AsSpan(UnitTags.Unit, UnitTags.Unit)), "one aligned unit");
        foreach (int at in new[] { 0, UnitTags.Unit - 1, UnitTags.Unit, 2 * UnitTags.Unit + 5000, Piece - 1 })
        {
            data[at] ^= 0x01;
            Assert.False(UnitTags.Matches(t, 0, data), $"a flipped bit at {at}");
            data[at] ^= 0x01;
        }
        // Units taken for the wrong place, or past the piece's end, never match.
        Assert.False(UnitTags.Matches(t, 0, data.AsSpan(UnitTags.Unit, UnitTags.Unit)));
        Assert.False(UnitTags.Matches(t, 4, data.AsSpan(0, 10)));
        Assert.Null(tags.Of(1));
    }

    [Fact]
    public void Tags_are_keyed_per_process_and_differ_from_a_plain_hash_of_the_same_bytes()
    {
        using var a = new UnitTags(1, new UnitTags.Budget(1 << 20));
        using var b = new UnitTags(1, new UnitTags.Budget(1 << 20));
        var data = PieceBytes(7);
        a.Record(0, data);
        b.Record(0, data);
        Assert.Equal(a.Of(0), b.Of(0)); // one key per process
        var sha = System.Security.Cryptography.SHA256.HashData(data.AsSpan(0, UnitTags.Unit));
        Assert.False(sha.AsSpan(0, UnitTags.TagSize).SequenceEqual(a.Of(0).AsSpan(0, UnitTags.TagSize)));
    }

    [Fact]
    public void The_budget_bounds_the_tags_held_and_forgetting_or_closing_gives_the_bytes_back()
    {
        int one = 4 * UnitTags.TagSize;
        var budget = new UnitTags.Budget(one + one / 2);
        var tags = new UnitTags(3, budget);
        Assert.True(tags.Record(0, PieceBytes()));
        Assert.Equal(one, budget.InUse);
        Assert.False(tags.Record(1, PieceBytes()), "over the budget: not tagged");
        Assert.Null(tags.Of(1));
        Assert.True(tags.Record(0, PieceBytes()), "already tagged: kept, not charged twice");
        Assert.Equal(one, budget.InUse);
        tags.Forget(0);
        Assert.Equal(0, budget.InUse);
        Assert.True(tags.Record(1, PieceBytes()));
        using var other = new UnitTags(1, budget);
        Assert.False(other.Record(0, PieceBytes()), "the budget is shared");
        tags.Dispose();
        Assert.Equal(0, budget.InUse);
        Assert.False(tags.Record(2, PieceBytes()), "closed: records nothing");
        Assert.Equal(0, budget.InUse);
    }
}
