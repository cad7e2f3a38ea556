using System.Globalization;
using Swarm.Core.Content;

namespace Swarm.Core.Sources;

/// <summary>
/// What an origin said about a URL's current version: its length, its ETag and Last-Modified, and the SHA-256 of the
/// whole content when known (the ingester computes it; some origins send it as <c>Repr-Digest</c>, <c>Content-Digest</c>,
/// <c>Digest</c> or <c>x-amz-checksum-sha256</c>). A pointer carries the validators seen at ingest, and a reader checks
/// them against the origin's current ones before it trusts the pointer.
/// </summary>
public sealed record OriginValidators(long Length, string? ETag, DateTimeOffset? LastModified, Hash256? Sha256)
{
    public const int MaxETagLength = 256;

    /// <summary>The validators in a response's headers; <paramref name="length"/> is the whole content's length.</summary>
    public static OriginValidators FromResponse(HttpResponseMessage response, long length)
    {
        string? etag = response.Headers.ETag?.Tag;
        if (etag is { Length: > MaxETagLength }) etag = null;
        return new OriginValidators(length, etag, response.Content.Headers.LastModified, DigestHeader(response));
    }

    /// <summary>Validators for content known by its SHA-256 (an OCI blob: the digest is the authority).</summary>
    public static OriginValidators ForDigest(long length, Hash256 sha256) => new(length, null, null, sha256);

    /// <summary>
    /// Whether a pointer made with these validators names the version the origin serves now (<paramref name="current"/>):
    /// the lengths agree, and every validator that both sides know agrees (ETags compared without the weak prefix).
    /// </summary>
    public bool Matches(OriginValidators current)
    {
        if (Length != current.Length) return false;
        if (ETag != null && current.ETag != null && !string.Equals(StripWeak(ETag), StripWeak(current.ETag), StringComparison.Ordinal)) return false;
        if (LastModified is { } a && current.LastModified is { } b && a.ToUnixTimeSeconds() != b.ToUnixTimeSeconds()) return false;
        if (Sha256 is { } x && current.Sha256 is { } y && x != y) return false;
        return true;
    }

    /// <summary>A short description for messages.</summary>
    public override string ToString()
    {
        var parts = new List<string> { $"{Length:N0} bytes" };
        if (ETag != null) parts.Add("ETag " + ETag);
        if (LastModified is { } lm) parts.Add("Last-Modified " + lm.ToString("R", CultureInfo.InvariantCulture));
        if (Sha256 is { } h) parts.Add("sha256:" + h.ToHex()[..12] + "…");
        return string.Join(", ", parts);
    }

    private static string StripWeak(string etag) => etag.StartsWith("W/", StringComparison.Ordinal) ? etag[2..] : etag;

    /// <summary>The SHA-256 of the representation, when the origin sends one in a header it is known for.</summary>
    private static Hash256? DigestHeader(HttpResponseMessage response)
    {
        // RFC 9530: Repr-Digest / Content-Digest: sha-256=:BASE64:, ... (Content-Digest is of the body sent, which for a
        // 200 without content coding is the representation).
        foreach (var name in new[] { "Repr-Digest", "Content-Digest" })
            if (TryHeader(response, name) is { } v)
                foreach (var item in v.Split(','))
                {
                    var kv = item.Trim().Split('=', 2);
                    if (kv.Length == 2 && kv[0].Trim().Equals("sha-256", StringComparison.OrdinalIgnoreCase) && FromBase64(kv[1].Trim().Trim(':')) is { } h) return h;
                }
        // RFC 3230 (obsolete, still sent): Digest: SHA-256=BASE64
        if (TryHeader(response, "Digest") is { } d)
            foreach (var item in d.Split(','))
            {
                var kv = item.Trim().Split('=', 2);
                if (kv.Length == 2 && kv[0].Trim().Equals("SHA-256", StringComparison.OrdinalIgnoreCase) && FromBase64(kv[1].Trim()) is { } h) return h;
            }
        // S3 with SHA-256 checksums (a whole-object checksum only when it has no "-N" part suffix).
        if (TryHeader(response, "x-amz-checksum-sha256") is { } s3 && !s3.Contains('-', StringComparison.Ordinal) && FromBase64(s3.Trim()) is { } s) return s;
        return null;
    }

    private static string? TryHeader(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var v) || response.Content.Headers.TryGetValues(name, out v) ? string.Join(",", v) : null;

    private static Hash256? FromBase64(string text)
    {
        Span<byte> bytes = stackalloc byte[48];
        return Convert.TryFromBase64String(text, bytes, out int n) && n == Hash256.Size ? new Hash256(bytes[..n]) : null;
    }
}
