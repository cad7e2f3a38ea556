using System.Globalization;
using System.Text.RegularExpressions;

namespace Swarm.Core.Sources;

/// <summary>Names, references, digests and media types of the OCI distribution and image specifications.</summary>
public static partial class Oci
{
    public const string ImageIndex = "application/vnd.oci.image.index.v1+json";
    public const string ImageManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestV1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// <summary>Every manifest type a pull accepts, most specific first (sent as Accept to the upstream).</summary>
    public static readonly string[] ManifestTypes = [ImageIndex, ImageManifest, DockerManifestList, DockerManifest];

    /// <summary>Manifests are small; the distribution spec lets registries refuse larger ones (4 MiB).</summary>
    public const int MaxManifestBytes = 4 << 20;

    /// <summary>A repository name as the distribution spec defines it (path components of lowercase alphanumerics and separators).</summary>
    public static bool IsValidName(string name) => name.Length <= 255 && NameRegex().IsMatch(name);

    /// <summary>A tag: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'.</summary>
    public static bool IsValidTag(string tag) => TagRegex().IsMatch(tag);

    /// <summary>A digest Swarm can verify: <c>sha256:</c> and 64 lowercase hex digits.</summary>
    public static bool IsSha256Digest(string digest) => Sha256Regex().IsMatch(digest);

    /// <summary>Any syntactically valid digest (algorithm:encoded), to tell "malformed" from "unsupported algorithm".</summary>
    public static bool LooksLikeDigest(string digest) => DigestRegex().IsMatch(digest);

    /// <summary>The registry host to talk to: <c>docker.io</c> (and <c>index.docker.io</c>) is served by <c>registry-1.docker.io</c>.</summary>
    public static string CanonicalRegistry(string registry) => registry.ToLowerInvariant() switch
    {
        "docker.io" or "index.docker.io" or "registry.hub.docker.com" => "registry-1.docker.io",
        _ => registry,
    };

    /// <summary>The <c>sha256:</c> digest of some bytes.</summary>
    public static string Sha256Digest(ReadOnlySpan<byte> data) => "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(data));

    /// <summary>The media type of a manifest body: its mediaType field, else what its shape says.</summary>
    public static string DetectManifestType(ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(json.ToArray());
            var root = doc.RootElement;
            if (root.ValueKind != System.Text.Json.JsonValueKind.Object) return ImageManifest;
            if (root.TryGetProperty("mediaType", out var mt) && mt.ValueKind == System.Text.Json.JsonValueKind.String && mt.GetString() is { Length: > 0 } t) return t;
            if (root.TryGetProperty("manifests", out _)) return ImageIndex;
            if (root.TryGetProperty("schemaVersion", out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number && v.TryGetInt32(out int version) && version == 1)
                return DockerManifestV1Signed;
            return ImageManifest;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            // Not JSON, or strings that are not valid UTF-8 (found by fuzzing): the default type; the digest check decides the rest.
            return ImageManifest;
        }
    }

    [GeneratedRegex(@"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", RegexOptions.CultureInvariant)]
    private static partial Regex TagRegex();

    [GeneratedRegex(@"^sha256:[a-f0-9]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex Sha256Regex();

    [GeneratedRegex(@"^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$", RegexOptions.CultureInvariant)]
    private static partial Regex DigestRegex();
}

/// <summary>
/// An image reference: <c>REGISTRY/REPO:TAG</c>, <c>REGISTRY/REPO@sha256:…</c> (or both), as given to
/// <c>swarm seed oci://…</c>. Without a registry part (no '.', ':' or "localhost" in the first component) the registry is
/// docker.io, and one-component names get docker.io's <c>library/</c> prefix; without tag or digest the tag is latest.
/// </summary>
public sealed record OciReference(string Registry, string Repository, string? Tag, string? Digest)
{
    /// <summary>The tag or digest to ask the registry for (the digest when both are given).</summary>
    public string Reference => Digest ?? Tag ?? "latest";

    public override string ToString() => $"{Registry}/{Repository}{(Tag != null ? ":" + Tag : "")}{(Digest != null ? "@" + Digest : "")}";

    public static OciReference Parse(string text)
    {
        string s = text.StartsWith("oci://", StringComparison.OrdinalIgnoreCase) ? text[6..] : text;
        string? digest = null, tag = null;
        int at = s.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            digest = s[(at + 1)..];
            s = s[..at];
            if (!Oci.IsSha256Digest(digest)) throw new FormatException($"'{text}': '{digest}' is not a sha256 digest (sha256: and 64 lowercase hex digits)");
        }
        int slash = s.IndexOf('/', StringComparison.Ordinal);
        string registry;
        string path;
        string first = slash < 0 ? "" : s[..slash];
        if (slash > 0 && (first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost"))
        {
            registry = first;
            path = s[(slash + 1)..];
        }
        else
        {
            registry = "docker.io";
            path = s;
        }
        int colon = path.LastIndexOf(':');
        if (colon >= 0)
        {
            tag = path[(colon + 1)..];
            path = path[..colon];
            if (!Oci.IsValidTag(tag)) throw new FormatException($"'{text}': '{tag}' is not a valid tag");
        }
        if (registry == "docker.io" && !path.Contains('/', StringComparison.Ordinal)) path = "library/" + path;
        if (!Oci.IsValidName(path)) throw new FormatException($"'{text}': '{path}' is not a valid repository name (lowercase letters, digits, '.', '_', '-', '/')");
        if (registry.Length == 0) throw new FormatException($"'{text}' names no registry");
        return new OciReference(registry, path, tag ?? (digest == null ? "latest" : null), digest);
    }
}

/// <summary>A platform filter: <c>os/arch[/variant]</c>, e.g. linux/amd64 or linux/arm64/v8.</summary>
public sealed record OciPlatform(string Os, string Architecture, string? Variant)
{
    public static OciPlatform Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length is < 2 or > 3 || parts.Any(p => p.Length == 0))
            throw new FormatException($"platform '{text}' is not os/arch[/variant], e.g. linux/amd64");
        return new OciPlatform(parts[0], parts[1], parts.Length == 3 ? parts[2] : null);
    }

    public bool Matches(string? os, string? architecture, string? variant) =>
        string.Equals(os, Os, StringComparison.Ordinal) && string.Equals(architecture, Architecture, StringComparison.Ordinal)
        && (Variant == null || string.Equals(variant, Variant, StringComparison.Ordinal));

    public override string ToString() => Variant == null ? $"{Os}/{Architecture}" : string.Create(CultureInfo.InvariantCulture, $"{Os}/{Architecture}/{Variant}");
}
