namespace Swarm.Core.Sources;

/// <summary>
/// The secrets of one request — values of <c>--filter</c>ed query parameters (signatures of signed URLs), user information
/// in the URL, and <c>-H</c> header values — and how to show the request without them: the URL through
/// <see cref="TaskKey.Redact(string, IReadOnlyCollection{string})"/>, headers as <c>Name: REDACTED</c>, and any text (a log
/// line, an error from deep down that printed the URL) with every secret value replaced by <c>REDACTED</c>.
/// </summary>
public sealed class SecretRedactor
{
    public const string Mask = "REDACTED";
    private readonly string _source;
    private readonly string[] _secrets;

    public SecretRedactor(string source, IReadOnlyCollection<string> filters, IEnumerable<string> headers)
    {
        _source = source;
        Source = TaskKey.Redact(source, filters);
        var h = headers.ToArray();
        Headers = [.. h.Select(RedactHeader)];
        var secrets = new List<string>();
        if (Uri.TryCreate(source, UriKind.Absolute, out var url))
        {
            if (url.UserInfo.Length > 0) AddForms(secrets, url.UserInfo);
            foreach (var pair in url.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = pair.Split('=', 2);
                if (parts.Length == 2 && filters.Contains(Uri.UnescapeDataString(parts[0]), StringComparer.Ordinal)) AddForms(secrets, parts[1]);
            }
        }
        foreach (var header in h)
        {
            int colon = header.IndexOf(':', StringComparison.Ordinal);
            string value = (colon < 0 ? header : header[(colon + 1)..]).Trim();
            AddForms(secrets, value);
            // "Bearer TOKEN", "Basic B64": the credential alone may be printed too.
            int space = value.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0) AddForms(secrets, value[(space + 1)..].Trim());
        }
        // Longest first, so a secret that contains another is replaced whole.
        _secrets = [.. secrets.Where(s => s.Length > 0).Distinct(StringComparer.Ordinal).OrderByDescending(s => s.Length)];
    }

    /// <summary>A redactor for requests with nothing secret (no filters, no headers): URLs lose their user information only.</summary>
    public static SecretRedactor For(string source) => new(source, [], []);

    /// <summary>The source as it may be shown.</summary>
    public string Source { get; }

    /// <summary>The headers as they may be shown: <c>Name: REDACTED</c>.</summary>
    public IReadOnlyList<string> Headers { get; }

    public static string RedactHeader(string header)
    {
        int colon = header.IndexOf(':', StringComparison.Ordinal);
        return colon <= 0 ? Mask : header[..colon].Trim() + ": " + Mask;
    }

    /// <summary>The text with the source shown redacted and every secret value replaced by <c>REDACTED</c>.</summary>
    public string Scrub(string? text)
    {
        if (string.IsNullOrEmpty(text)) return text ?? "";
        if (_source.Length > 0) text = text.Replace(_source, Source, StringComparison.Ordinal);
        foreach (var secret in _secrets) text = text.Replace(secret, Mask, StringComparison.Ordinal);
        return text;
    }

    private static void AddForms(List<string> secrets, string value)
    {
        // As given, and as Uri.ToString() and messages print it (unescaped).
        secrets.Add(value);
        try
        {
            secrets.Add(Uri.UnescapeDataString(value));
            secrets.Add(Uri.EscapeDataString(Uri.UnescapeDataString(value)));
        }
        catch (UriFormatException) { }
    }
}
