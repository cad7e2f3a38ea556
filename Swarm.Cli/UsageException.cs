namespace Swarm.Cli;

/// <summary>A command-line value that parsed but makes no sense.</summary>
internal sealed class UsageException(string message) : Exception(message);
