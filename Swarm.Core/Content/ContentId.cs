namespace Swarm.Core.Content;

/// <summary>Names content: the SHA-256 of its manifest. Written as <c>swarm://&lt;64 hex digits&gt;</c>.</summary>
public readonly record struct ContentId(Hash256 Value)
{
    public const string Scheme = "swarm://";

    public static ContentId Parse(string text)
    {
        if (TryParse(text, out var id)) return id;
        throw new FormatException($"'{text}' is not a content id: expected {Scheme} followed by 64 hex digits");
    }

    public static bool TryParse(string? text, out ContentId id)
    {
        id = default;
        if (text is null) return false;
        ReadOnlySpan<char> s = text.AsSpan().Trim();
        if (s.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)) s = s[Scheme.Length..];
        s = s.TrimEnd('/');
        if (!Hash256.TryParseHex(s, out var h)) return false;
        id = new ContentId(h);
        return true;
    }

    public string Hex => Value.ToHex();
    public string ToUri() => Scheme + Hex;
    public override string ToString() => ToUri();
}
