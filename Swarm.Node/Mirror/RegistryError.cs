using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Swarm.Node.Mirror;

/// <summary>An error answer of the OCI distribution API: a status and <c>{"errors":[{"code","message"}]}</c>.</summary>
internal static class RegistryError
{
    /// <summary>Writes the error, unless the response has started (then nothing can be said); a HEAD gets no body.</summary>
    public static async Task WriteAsync(HttpContext context, int status, string code, string message)
    {
        var response = context.Response;
        if (response.HasStarted) return;
        response.StatusCode = status;
        response.ContentType = "application/json";
        if (HttpMethods.IsHead(context.Request.Method)) return;
        await response.WriteAsync(JsonSerializer.Serialize(new { errors = new[] { new { code, message } } })).ConfigureAwait(false);
    }
}
