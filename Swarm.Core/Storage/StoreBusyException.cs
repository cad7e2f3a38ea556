namespace Swarm.Core.Storage;

/// <summary>Another process holds the writer lock of a store entry (it is downloading into it).</summary>
public sealed class StoreBusyException : IOException
{
    public StoreBusyException(string message) : base(message) { }
    public StoreBusyException() { }
    public StoreBusyException(string message, Exception inner) : base(message, inner) { }
}
