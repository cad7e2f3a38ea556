namespace Swarm.Cli;

/// <summary>No node answers on the control socket of the data directory.</summary>
internal sealed class NodeNotRunningException(string message) : Exception(message);
