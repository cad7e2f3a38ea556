namespace Swarm.Node;

/// <summary>A setting that is missing, malformed or out of range; the message names the setting and where it came from.</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string message) : base(message) { }
    public ConfigException() { }
    public ConfigException(string message, Exception inner) : base(message, inner) { }
}
