namespace Swarm.Node;

/// <summary>How a source and its request headers are read, the same for the CLI and for tasks handed to the node.</summary>
public static class OriginRequest
{
    /// <summary>An http(s) URL, or null when the text is something else (a file, a swarm:// id).</summary>
    public static Uri? AsUrl(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps) ? u : null;

    /// <summary>Parses <c>Name: value</c> request headers (as given with -H).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ParseHeaders(IEnumerable<string>? headers) =>
        [.. (headers ?? []).Select(h =>
        {
            int colon = h.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) throw new FormatException($"-H '{h}' is not a header: write 'Name: value'");
            return new KeyValuePair<string, string>(h[..colon].Trim(), h[(colon + 1)..].Trim());
        })];
}
