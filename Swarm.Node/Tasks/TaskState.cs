using System.Text.Json.Serialization;

namespace Swarm.Node;

/// <summary>Where a task stands (as <c>swarm ls</c> and the control API show it).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TaskState>))]
public enum TaskState
{
    [JsonStringEnumMemberName("running")] Running,
    [JsonStringEnumMemberName("done")] Done,
    [JsonStringEnumMemberName("failed")] Failed,
    /// <summary>Stopped by the client (<c>swarm rm</c>, Ctrl-C).</summary>
    [JsonStringEnumMemberName("cancelled")] Cancelled,
    /// <summary>Stopped because the node stopped: it resumes when the node starts again.</summary>
    [JsonStringEnumMemberName("interrupted")] Interrupted,
}
