using System.Text.RegularExpressions;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// A path under <c>/v2/</c> split into endpoint, repository name and reference (tag or digest), plus what the
/// distribution spec says about each part: pulls of a name, tag or digest that cannot exist answer 404 (its endpoint
/// table lists no other failure for GET/HEAD of manifests and blobs); the referrers API answers 400 for a malformed
/// digest; pushes answer 400 for a malformed digest.
/// </summary>
internal sealed partial record RegistryRoute(RegistryEndpoint Endpoint, string Name, string Reference)
{
    private static readonly (string Marker, RegistryEndpoint Endpoint)[] Markers =
        [("/manifests/", RegistryEndpoint.Manifests), ("/blobs/", RegistryEndpoint.Blobs), ("/referrers/", RegistryEndpoint.Referrers)];

    /// <summary>Splits <paramref name="rest"/> (the path after <c>/v2/</c>); the last endpoint marker wins, as repository names may contain the words.</summary>
    public static RegistryRoute Parse(string rest)
    {
        if (rest.EndsWith("/tags/list", StringComparison.Ordinal)) return new(RegistryEndpoint.TagList, rest[..^"/tags/list".Length], "");
        int cut = -1;
        var endpoint = RegistryEndpoint.None;
        string marker = "";
        foreach (var (m, e) in Markers)
        {
            int at = rest.LastIndexOf(m, StringComparison.Ordinal);
            if (at > cut) (cut, endpoint, marker) = (at, e, m);
        }
        return cut <= 0 ? new(RegistryEndpoint.None, "", "") : new(endpoint, rest[..cut], rest[(cut + marker.Length)..]);
    }

    public bool ValidName => Oci.IsValidName(Name);

    /// <summary>A blob upload session (<c>/v2/NAME/blobs/uploads/…</c>).</summary>
    public bool IsUpload => Endpoint == RegistryEndpoint.Blobs && (Reference == "uploads" || Reference.StartsWith("uploads/", StringComparison.Ordinal));

    /// <summary>The reference has a digest's <c>algorithm:</c> prefix.</summary>
    public bool ByDigest => Reference.Contains(':', StringComparison.Ordinal);

    /// <summary>
    /// A digest reference that breaks the digest grammar of the image spec (including a registered algorithm with the
    /// wrong encoding, such as <c>sha256:totallywrong</c>); null when it is well formed.
    /// </summary>
    public string? MalformedDigest()
    {
        string r = Reference;
        if (!Oci.LooksLikeDigest(r)) return $"'{Shown(r)}' is not a digest (algorithm:encoded, e.g. sha256: and 64 lowercase hex digits)";
        if (r.StartsWith("sha256:", StringComparison.Ordinal) && !Oci.IsSha256Digest(r)) return $"'{Shown(r)}' is not a sha256 digest (64 lowercase hex digits)";
        if (r.StartsWith("sha512:", StringComparison.Ordinal) && !Sha512Regex().IsMatch(r)) return $"'{Shown(r)}' is not a sha512 digest (128 lowercase hex digits)";
        return null;
    }

    /// <summary>
    /// Why no manifest (or blob) can have this reference at this mirror, or null when it is a tag or sha256 digest it
    /// serves. Such references get 404 like any unknown one.
    /// </summary>
    public string? Unservable()
    {
        if (Endpoint == RegistryEndpoint.Manifests && !ByDigest)
            return Oci.IsValidTag(Reference) ? null
                : $"'{Shown(Reference)}' is neither a tag (up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-') nor a digest, so no manifest has that reference";
        if (!ByDigest) return $"'{Shown(Reference)}' is not a digest: blobs are fetched by digest, so no blob has that reference";
        if (Oci.IsSha256Digest(Reference)) return null;
        return MalformedDigest() is { } malformed
            ? $"{malformed}, so nothing has that digest"
            : $"'{Shown(Reference)}': this mirror serves sha256 digests only (it verifies every byte against one); fetch it from the registry itself";
    }

    /// <summary>Why the repository name cannot exist.</summary>
    public string InvalidName => $"'{Shown(Name)}' is not a valid repository name (lowercase path components of [a-z0-9] joined by '.', '_', '__' or '-')";

    /// <summary>A client's text as quoted in an error message: at most 200 characters.</summary>
    public static string Shown(string text) => text.Length <= 200 ? text : text[..200] + "…";

    [GeneratedRegex(@"^sha512:[a-f0-9]{128}$", RegexOptions.CultureInvariant)]
    private static partial Regex Sha512Regex();
}
