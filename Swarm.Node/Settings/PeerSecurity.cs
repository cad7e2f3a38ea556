using System.Collections;
using Swarm.Core.Dht;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;

namespace Swarm.Node;

/// <summary>
/// Who may talk to this node and how: the private swarm's key (settings <c>swarm-key</c>), encryption of peer traffic
/// (<c>peer-encryption</c>) and the test-swarm exemption (<c>lab-loopback</c>). Read the same way by the node service and
/// by every command that starts a node of its own.
/// </summary>
public sealed record PeerSecurity(SwarmKey? SwarmKey, bool Encrypt, bool LabLoopback)
{
    /// <summary>Resolves the three settings (flag, environment, swarm.json, default); a bad value is a <see cref="ConfigException"/>.</summary>
    public static PeerSecurity Load(string dataDirectory, string? swarmKeyFlag, string? encryptionFlag, IDictionary? environment = null) => new(
        NodeConfig.LoadOne(dataDirectory, "swarm-key", swarmKeyFlag, ParseSwarmKey, environment),
        NodeConfig.LoadOne(dataDirectory, "peer-encryption", encryptionFlag, ParseOnOff, environment),
        NodeConfig.LoadOne(dataDirectory, "lab-loopback", null, ParseOnOff, environment));

    public EngineOptions Apply(EngineOptions options) => options with { SwarmKey = SwarmKey, Encrypt = Encrypt, LoopbackAsHosts = LabLoopback };

    public DhtOptions Apply(DhtOptions options) => options with { SwarmKey = SwarmKey?.Derive("swarm/dht"), LoopbackAsHosts = LabLoopback };

    /// <summary>An empty value is an open swarm; anything else names a key file (loaded and checked now).</summary>
    internal static SwarmKey? ParseSwarmKey(string value)
    {
        if (value.Length == 0) return null;
        try
        {
            return SwarmKey.Load(Path.GetFullPath(value));
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or UnauthorizedAccessException)
        {
            throw new FormatException(e.Message, e);
        }
    }

    internal static bool ParseOnOff(string value) => value.ToLowerInvariant() switch
    {
        "on" or "true" or "yes" or "1" => true,
        "off" or "false" or "no" or "0" => false,
        _ => throw new FormatException("write on or off"),
    };
}
