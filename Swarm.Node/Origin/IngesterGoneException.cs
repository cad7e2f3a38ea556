namespace Swarm.Node;

/// <summary>A live download was abandoned because the node ingesting from the origin went away.</summary>
public sealed class IngesterGoneException : Exception
{
    public IngesterGoneException(string message) : base(message) { }
    public IngesterGoneException() { }
    public IngesterGoneException(string message, Exception inner) : base(message, inner) { }
}
