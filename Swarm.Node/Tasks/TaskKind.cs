using System.Text.Json.Serialization;

namespace Swarm.Node;

/// <summary>What a task does: fetch a source (<c>get</c>) or ingest and serve one (<c>seed</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TaskKind>))]
public enum TaskKind
{
    [JsonStringEnumMemberName("get")] Get,
    [JsonStringEnumMemberName("seed")] Seed,
}
