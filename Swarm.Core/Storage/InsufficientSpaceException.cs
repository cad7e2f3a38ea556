namespace Swarm.Core.Storage;

/// <summary>The store's disk has less free space than the content needs.</summary>
public sealed class InsufficientSpaceException : IOException
{
    public InsufficientSpaceException(string message) : base(message) { }
    public InsufficientSpaceException() { }
    public InsufficientSpaceException(string message, Exception inner) : base(message, inner) { }
}
