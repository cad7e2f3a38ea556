using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// This node's own last referrers answer for each registry, repository, subject digest and query (one file each),
/// used only when the upstream cannot be reached — the rule of <see cref="TagResolutions"/>: the list is not
/// content-addressed by the subject, so a peer's copy could not be checked and is never used.
/// </summary>
internal sealed class ReferrersIndexes(string directory, ILogger logger)
{
    private string PathOf(string registry, string repository, string subject, string query) =>
        Path.Combine(directory, Hash256.Of(Encoding.UTF8.GetBytes($"{Oci.CanonicalRegistry(registry)}/{repository}@{subject}{query}")).ToHex() + ".json");

    private sealed record Saved(string Digest, string Body, string? FiltersApplied, string? Link, DateTime FetchedAt);

    public void Save(string registry, string repository, string subject, string query, ReferrersIndex index)
    {
        string path = PathOf(registry, repository, subject, query);
        try
        {
            var saved = new Saved(Oci.Sha256Digest(index.Body), Convert.ToBase64String(index.Body), index.FiltersApplied, index.Link, index.FetchedAt);
            File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(saved));
            File.Move(path + ".tmp", path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("could not save the referrers of {Repository}@{Subject}: {Error}", repository, subject, e.Message);
        }
    }

    /// <summary>What this node itself last received for the query (never a peer's answer), or null; a file that does not match its own digest is ignored.</summary>
    public ReferrersIndex? Last(string registry, string repository, string subject, string query)
    {
        string path = PathOf(registry, repository, subject, query);
        try
        {
            if (!File.Exists(path)) return null;
            var saved = JsonSerializer.Deserialize<Saved>(File.ReadAllText(path));
            if (saved == null) return null;
            byte[] body = Convert.FromBase64String(saved.Body);
            return Oci.Sha256Digest(body) == saved.Digest ? new ReferrersIndex(body, saved.FiltersApplied, saved.Link, saved.FetchedAt) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or FormatException or ArgumentNullException)
        {
            return null;
        }
    }
}
