using System.Text;
using Swarm.Core.Content;

namespace Swarm.Core.Sources;

/// <summary>
/// What a URL is known by in the swarm: SHA-256 of the normalised URL and an optional tag. Query parameters named in
/// <c>filters</c> (for example the signature of a signed URL) are left out, so every node fetching the same object
/// through differently signed URLs shares one task.
/// </summary>
public static class TaskKey
{
    public static string Normalize(Uri url, IReadOnlyCollection<string> filters)
    {
        if (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            throw new FormatException($"'{url}' is not an http(s) URL");
        var b = new StringBuilder();
        b.Append(url.Scheme.ToLowerInvariant()).Append("://").Append(url.IdnHost.ToLowerInvariant());
        if (!url.IsDefaultPort) b.Append(':').Append(url.Port);
        b.Append(url.AbsolutePath);
        string query = url.Query.TrimStart('?');
        if (query.Length > 0)
        {
            var kept = query.Split('&', StringSplitOptions.RemoveEmptyEntries)
                .Where(p => !filters.Contains(Uri.UnescapeDataString(p.Split('=', 2)[0]), StringComparer.Ordinal))
                .ToList();
            if (kept.Count > 0) b.Append('?').AppendJoin('&', kept);
        }
        return b.ToString();
    }

    /// <summary>
    /// The URL as it may be shown (logs, <c>ls</c>, <c>status</c>, errors): the values of the query parameters named in
    /// <paramref name="filters"/> (signatures of signed URLs) and any user information are replaced by <c>REDACTED</c>.
    /// </summary>
    public static string Redact(Uri url, IReadOnlyCollection<string> filters)
    {
        if (!url.IsAbsoluteUri) return url.OriginalString;
        var b = new StringBuilder();
        b.Append(url.Scheme).Append("://");
        if (url.UserInfo.Length > 0) b.Append("REDACTED@");
        b.Append(url.Authority).Append(url.AbsolutePath);
        string query = url.Query.TrimStart('?');
        if (query.Length > 0)
        {
            b.Append('?').AppendJoin('&', query.Split('&').Select(p =>
            {
                var name = p.Split('=', 2)[0];
                return filters.Contains(Uri.UnescapeDataString(name), StringComparer.Ordinal) ? name + "=REDACTED" : p;
            }));
        }
        return b.ToString();
    }

    /// <summary><see cref="Redact(Uri, IReadOnlyCollection{string})"/> for text that may or may not be a URL (a task's source).</summary>
    public static string Redact(string source, IReadOnlyCollection<string> filters) =>
        Uri.TryCreate(source, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps) ? Redact(u, filters) : source;

    public static Hash256 For(Uri url, string? tag, IReadOnlyCollection<string> filters) =>
        Hash256.Of(Encoding.UTF8.GetBytes($"swarm/task/v1\n{Normalize(url, filters)}\n{tag}"));
}
