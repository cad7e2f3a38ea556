namespace Swarm.Core.Storage;

/// <summary>The output of a get cannot be written by this process (its directory is not writable, or read-only): a local problem, found before any download.</summary>
public sealed class OutputNotWritableException : IOException
{
    public OutputNotWritableException(string message, Exception inner) : base(message, inner) { }
    public OutputNotWritableException(string message) : base(message) { }
    public OutputNotWritableException() { }
}
