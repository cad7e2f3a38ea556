using System.Collections.Concurrent;
using System.Text.Json;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// The upstream registries a node pulls from, with their credentials, read from a JSON file (default
/// <c>registries.json</c> in the data directory; keep it mode 0600):
/// <code>
/// { "registry.example.com": { "username": "ci", "password": "…" },
///   "10.0.0.5:5000": { "plainHttp": true } }
/// </code>
/// A registry not listed is used anonymously, over HTTPS (plain HTTP for localhost and loopback addresses).
/// </summary>
public sealed class Registries : IDisposable
{
    private readonly Dictionary<string, Entry> _entries;
    private readonly ConcurrentDictionary<string, RegistryClient> _clients = new(StringComparer.OrdinalIgnoreCase);

    private sealed record Entry(RegistryCredentials? Credentials, bool? PlainHttp);

    private Registries(Dictionary<string, Entry> entries, string? path)
    {
        _entries = entries;
        Path = path;
    }

    public string? Path { get; }

    /// <summary>The registries the file configures (as written).</summary>
    public IEnumerable<string> Configured => _entries.Keys;

    public static Registries Empty() => new(new Dictionary<string, Entry>(StringComparer.OrdinalIgnoreCase), null);

    /// <summary>Reads the file; a missing file means "no credentials"; a malformed one is a <see cref="ConfigException"/>.</summary>
    public static Registries Load(string path)
    {
        var entries = new Dictionary<string, Entry>(StringComparer.OrdinalIgnoreCase);
        if (!File.Exists(path)) return new Registries(entries, path);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ConfigException($"{path}: expected a JSON object keyed by registry host");
            foreach (var registry in doc.RootElement.EnumerateObject())
            {
                if (registry.Value.ValueKind != JsonValueKind.Object) throw new ConfigException($"{path}: \"{registry.Name}\" must be an object");
                string? user = null, password = null;
                bool? plain = null;
                foreach (var p in registry.Value.EnumerateObject())
                {
                    switch (p.Name)
                    {
                        case "username" when p.Value.ValueKind == JsonValueKind.String: user = p.Value.GetString(); break;
                        case "password" when p.Value.ValueKind == JsonValueKind.String: password = p.Value.GetString(); break;
                        case "plainHttp" when p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False: plain = p.Value.GetBoolean(); break;
                        default: throw new ConfigException($"{path}: \"{registry.Name}\".\"{p.Name}\" is not a known setting (username, password: strings; plainHttp: true/false)");
                    }
                }
                if ((user == null) != (password == null)) throw new ConfigException($"{path}: \"{registry.Name}\" needs both username and password, or neither");
                entries[registry.Name] = new Entry(user != null ? new RegistryCredentials(user, password!) : null, plain);
            }
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path} is not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // A name or string that cannot be text (an escaped lone surrogate, \ud800): found by fuzzing.
            throw new ConfigException($"{path} holds a string that is not valid text (an escaped lone surrogate?): {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new ConfigException($"cannot read {path}: {e.Message}", e);
        }
        return new Registries(entries, path);
    }

    /// <summary>The client for a registry (one per registry, so tokens are shared).</summary>
    public RegistryClient Client(string registry) => _clients.GetOrAdd(registry, r =>
    {
        _entries.TryGetValue(r, out var entry);
        if (entry == null) _entries.TryGetValue(Oci.CanonicalRegistry(r), out entry);
        return new RegistryClient(r, entry?.Credentials, entry?.PlainHttp);
    });

    public void Dispose()
    {
        foreach (var c in _clients.Values) c.Dispose();
    }
}
