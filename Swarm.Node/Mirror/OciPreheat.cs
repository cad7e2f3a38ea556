using Swarm.Core;
using System.Text.Json;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node.Mirror;

/// <summary>
/// <c>swarm seed oci://REGISTRY/REPO:TAG</c>: resolves the reference at the registry, then puts the manifest (and for an
/// index, every platform's manifest, or only <c>--platform</c>'s) and every config and layer into this node's store,
/// each verified against its digest, served, announced, and published under its digest's task key so any node's mirror
/// finds it in the swarm, even with the registry down.
/// </summary>
public static class OciPreheat
{
    public static async Task<PreheatResult> RunAsync(LocalNode node, OciContent oci, Registries registries, OciReference reference, OciPlatform? platform,
        IProgress<(long Done, long Total)>? progress, Action<string> say, CancellationToken cancellationToken)
    {
        var client = registries.Client(reference.Registry);
        var top = await client.GetManifestAsync(reference.Repository, reference.Reference, cancellationToken).ConfigureAwait(false);
        var manifests = new List<RegistryManifest> { top };
        var images = new List<RegistryManifest>();
        if (IsIndex(top))
        {
            foreach (var (digest, os, arch, variant) in IndexEntries(top.Body))
            {
                if (platform != null && !platform.Matches(os, arch, variant)) continue;
                var child = await client.GetManifestAsync(reference.Repository, digest, cancellationToken).ConfigureAwait(false);
                manifests.Add(child);
                images.Add(child);
            }
            if (images.Count == 0)
                throw new ArgumentException($"{reference} is an index with no manifest for {platform?.ToString() ?? "any platform"}; check --platform");
        }
        else images.Add(top);

        var blobs = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var image in images)
            foreach (var (digest, size) in Blobs(image.Body))
                blobs.TryAdd(digest, size);
        long total = blobs.Values.Sum(), done = 0, fromUpstream = 0;
        say($"{reference} is {top.Digest}: {images.Count} image(s), {blobs.Count} blob(s), {total:N0} bytes");
        foreach (var m in manifests) await oci.PublishManifestAsync(m, client.HasCredentials, cancellationToken).ConfigureAwait(false);

        foreach (var (digest, size) in blobs)
        {
            var local = oci.Local(digest);
            if (local == null)
            {
                // Meets the registry's auth challenge, so the ingest's requests carry a token.
                await client.HeadBlobAsync(reference.Repository, digest, cancellationToken).ConfigureAwait(false);
                var headers = new List<KeyValuePair<string, string>>();
                if (await client.AuthorizationAsync(reference.Repository, cancellationToken).ConfigureAwait(false) is { } auth) headers.Add(new("Authorization", auth));
                using var origin = new OriginClient(headers);
                var key = OciContent.TaskKey(digest);
                long before = done;
                local = (await OriginIngest.RunAsync(node, client.BlobUri(reference.Repository, digest), key, origin,
                    new InlineProgress<(long Done, long Total)>(p => progress?.Report((before + p.Done, total))),
                    (live, validators) => TaskPointers.PublishAsync(node, key, live, validators, cancellationToken, live: true), cancellationToken).ConfigureAwait(false)).Content;
                try
                {
                    ContentDigest.Verify(local, digest);
                }
                catch (DigestMismatchException)
                {
                    await node.RemoveAsync(local.Id).ConfigureAwait(false);
                    throw new RegistryException(RegistryFailure.Invalid, $"{reference.Registry} sent a blob for {digest} that does not match it; nothing was published for it");
                }
                fromUpstream += local.Layout.Length;
                oci.Remember(digest, local.Id);
            }
            await node.ServeAsync(local, cancellationToken).ConfigureAwait(false);
            if (client.HasCredentials) await oci.MarkPrivateAsync(digest, cancellationToken).ConfigureAwait(false);
            await TaskPointers.PublishAsync(node, OciContent.TaskKey(digest), local.Id, OciContent.Validators(digest, local.Layout.Length), cancellationToken).ConfigureAwait(false);
            done += size;
            progress?.Report((done, total));
        }
        return new PreheatResult(top.Digest, manifests.Count, blobs.Count, total, fromUpstream);
    }

    private static bool IsIndex(RegistryManifest m) =>
        m.MediaType is Oci.ImageIndex or Oci.DockerManifestList || Oci.DetectManifestType(m.Body) is Oci.ImageIndex or Oci.DockerManifestList;

    private static List<(string Digest, string? Os, string? Arch, string? Variant)> IndexEntries(byte[] body) => Shaped(body, root =>
    {
        var entries = new List<(string, string?, string?, string?)>();
        if (!root.TryGetProperty("manifests", out var list) || list.ValueKind != JsonValueKind.Array) return entries;
        foreach (var e in list.EnumerateArray())
        {
            if (!e.TryGetProperty("digest", out var d) || d.GetString() is not { } digest || !Oci.IsSha256Digest(digest)) throw Bad("an index entry without a sha256 digest");
            string? os = null, arch = null, variant = null;
            if (e.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object)
            {
                os = p.TryGetProperty("os", out var o) ? o.GetString() : null;
                arch = p.TryGetProperty("architecture", out var a) ? a.GetString() : null;
                variant = p.TryGetProperty("variant", out var v) ? v.GetString() : null;
            }
            entries.Add((digest, os, arch, variant));
        }
        return entries;
    });

    private static List<(string Digest, long Size)> Blobs(byte[] body) => Shaped(body, root =>
    {
        var result = new List<(string, long)>();
        void Add(JsonElement descriptor)
        {
            if (!descriptor.TryGetProperty("digest", out var d) || d.GetString() is not { } digest || !Oci.IsSha256Digest(digest)) throw Bad("a descriptor without a sha256 digest");
            long size = descriptor.TryGetProperty("size", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out long n) ? n : 0;
            result.Add((digest, size));
        }
        if (root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object) Add(config);
        if (root.TryGetProperty("layers", out var layers) && layers.ValueKind == JsonValueKind.Array)
            foreach (var layer in layers.EnumerateArray()) Add(layer);
        return result;
    });

    /// <summary>
    /// Reads a manifest with <paramref name="read"/>; JSON of another shape (a root or entry that is not an object, a value
    /// that is not a string, a string that is not UTF-8 — found by fuzzing) is the registry's error, as bad JSON is.
    /// </summary>
    private static T Shaped<T>(byte[] body, Func<JsonElement, T> read)
    {
        using var doc = Parse(body);
        try
        {
            return read(doc.RootElement);
        }
        catch (InvalidOperationException e)
        {
            throw new RegistryException(RegistryFailure.Invalid, "the registry sent a manifest whose JSON does not have a manifest's shape", e);
        }
    }

    private static JsonDocument Parse(byte[] body)
    {
        try
        {
            return JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw new RegistryException(RegistryFailure.Invalid, $"the registry sent a manifest that is not JSON: {e.Message}", e);
        }
    }

    private static RegistryException Bad(string what) => new(RegistryFailure.Invalid, $"the registry sent a manifest with {what}");
}
