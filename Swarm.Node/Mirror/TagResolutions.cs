using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// This node's own last resolution of each tag (one file per registry, repository and tag), used only when the upstream
/// cannot be reached; never a peer's answer.
/// </summary>
internal sealed class TagResolutions(string directory, ILogger logger)
{
    private string TagPath(string registry, string repository, string tag) =>
        Path.Combine(directory, Hash256.Of(Encoding.UTF8.GetBytes($"{Oci.CanonicalRegistry(registry)}/{repository}:{tag}")).ToHex() + ".json");

    private sealed record SavedTag(string Digest, string MediaType, string Body);

    public void Save(string registry, string repository, string tag, RegistryManifest manifest)
    {
        string path = TagPath(registry, repository, tag);
        try
        {
            File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(new SavedTag(manifest.Digest, manifest.MediaType, Convert.ToBase64String(manifest.Body))));
            File.Move(path + ".tmp", path, overwrite: true);
        }
        catch (IOException e)
        {
            logger.LogWarning("could not save the resolution of {Repository}:{Tag}: {Error}", repository, tag, e.Message);
        }
    }

    /// <summary>What this node itself last resolved the tag to (never a peer's answer), or null.</summary>
    public RegistryManifest? Last(string registry, string repository, string tag)
    {
        string path = TagPath(registry, repository, tag);
        try
        {
            if (!File.Exists(path)) return null;
            var saved = JsonSerializer.Deserialize<SavedTag>(File.ReadAllText(path));
            if (saved == null) return null;
            byte[] body = Convert.FromBase64String(saved.Body);
            return Oci.Sha256Digest(body) == saved.Digest ? new RegistryManifest(saved.Digest, saved.MediaType, body) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or FormatException)
        {
            return null;
        }
    }
}
