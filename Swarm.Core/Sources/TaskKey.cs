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

    public static Hash256 For(Uri url, string? tag, IReadOnlyCollection<string> filters) =>
        Hash256.Of(Encoding.UTF8.GetBytes($"swarm/task/v1\n{Normalize(url, filters)}\n{tag}"));
}
