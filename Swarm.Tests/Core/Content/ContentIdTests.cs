using Swarm.Core.Content;

namespace Swarm.Tests.Core.Content;

public sealed class ContentIdTests
{
    private const string Hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("swarm://" + Hex)]
    [InlineData(Hex)]
    [InlineData("SWARM://" + Hex)]
    [InlineData("swarm://0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF")]
    [InlineData("  swarm://" + Hex + "  ")]
    [InlineData("swarm://" + Hex + "/")]
    public void Parses_with_and_without_the_scheme(string text)
    {
        var id = ContentId.Parse(text);
        Assert.Equal(Hex, id.Hex);
        Assert.Equal("swarm://" + Hex, id.ToUri());
        Assert.Equal(id.ToUri(), id.ToString());
        Assert.True(ContentId.TryParse(text, out var again));
        Assert.Equal(id, again);
    }

    [Theory]
    [InlineData("")]
    [InlineData("swarm://")]
    [InlineData("swarm://" + Hex + "0")]        // 65 digits
    [InlineData("swarm://" + Hex + "00")]       // 66 digits: 33 bytes
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde")] // 63 digits
    [InlineData("0123456789abcdef0123456789abcdef")] // 32 digits
    [InlineData("swarm://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg")] // non-hex
    [InlineData("swarm://0123456789abcdef0123456789abcdef 0123456789abcdef0123456789abcde")]
    [InlineData("http://" + Hex)]
    [InlineData("swarm:/" + Hex)]
    [InlineData("swarm://swarm://" + Hex)]
    [InlineData("swarm://" + Hex + "?x=1")]
    public void Rejects_what_is_not_a_content_id(string text)
    {
        Assert.False(ContentId.TryParse(text, out var id));
        Assert.Equal(default, id);
        var e = Assert.Throws<FormatException>(() => ContentId.Parse(text));
        Assert.Contains("swarm://", e.Message);
    }

    [Fact]
    public void TryParse_of_null_is_false() => Assert.False(ContentId.TryParse(null, out _));

    [Fact]
    public void Round_trips_through_text()
    {
        var id = new ContentId(Hash256.Random());
        Assert.Equal(id, ContentId.Parse(id.ToString()));
        Assert.Equal(id, ContentId.Parse(id.Hex));
        Assert.Equal(64, id.Hex.Length);
    }
}
