using System.Net;
using System.Net.Http.Headers;

namespace Swarm.Core.Sources;

/// <summary>
/// The body of an origin response that survives a connection cut: when the stream fails or ends before its
/// Content-Length, it asks the origin again — with <c>Range: bytes=N-</c> when the origin supports ranges, otherwise from
/// the start, skipping what was already read — up to a few times with back-off. Reads only forward.
/// </summary>
public sealed class ResumingOriginStream : Stream
{
    private readonly OriginClient _origin;
    // Messages show _origin.Display(_url): a signed URL's signature never reaches an error text or a log.
    private readonly Uri _url;
    private readonly long _length;
    private readonly bool _ranges;
    private readonly int _maxResumes;
    private HttpResponseMessage _response;
    private Stream _body;
    private long _position;
    private int _resumes;
    // The version the transfer started with: a resume asks for the rest only if the origin still has it.
    private readonly RangeConditionHeaderValue? _condition;

    private ResumingOriginStream(OriginClient origin, Uri url, HttpResponseMessage response, Stream body, long length, int maxResumes, long start, bool ranges = false)
    {
        _position = start;
        _origin = origin;
        _url = url;
        _response = response;
        _body = body;
        _length = length;
        _ranges = ranges || response.Headers.AcceptRanges.Contains("bytes");
        _condition = response.Headers.ETag is { IsWeak: false } tag ? new RangeConditionHeaderValue(tag)
            : response.Content.Headers.LastModified is { } date ? new RangeConditionHeaderValue(date) : null;
        _maxResumes = maxResumes;
    }

    public static async Task<ResumingOriginStream> OpenAsync(OriginClient origin, Uri url, HttpResponseMessage response, long length, CancellationToken cancellationToken, int maxResumes = 5)
    {
        var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        return new ResumingOriginStream(origin, url, response, body, length, maxResumes, 0);
    }

    /// <summary>
    /// The body of a 206 answer to a range request for bytes <paramref name="start"/>.. of <paramref name="length"/>
    /// (the caller checked its Content-Range); later cuts resume with ranges.
    /// </summary>
    public static async Task<ResumingOriginStream> ContinueAsync(OriginClient origin, Uri url, HttpResponseMessage partial, long length, long start, CancellationToken cancellationToken, int maxResumes = 5)
    {
        var body = await partial.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        return new ResumingOriginStream(origin, url, partial, body, length, maxResumes, start, ranges: true);
    }

    /// <summary>
    /// Continues a transfer at byte <paramref name="start"/> of <paramref name="length"/>: a range request when the first
    /// response (<paramref name="response"/>, for the whole body) says the origin supports ranges, otherwise the whole
    /// body is read again and the first bytes skipped.
    /// </summary>
    public static async Task<ResumingOriginStream> OpenAtAsync(OriginClient origin, Uri url, HttpResponseMessage response, long length, long start, CancellationToken cancellationToken, int maxResumes = 5)
    {
        var stream = await OpenAsync(origin, url, response, length, cancellationToken, maxResumes).ConfigureAwait(false);
        if (start <= 0) return stream;
        if (stream._ranges)
        {
            stream._position = start;
            stream._resumes = -1; // this first "resume" is not a failure
            await stream.ResumeAsync(cancellationToken, immediately: true).ConfigureAwait(false);
            return stream;
        }
        var skip = new byte[64 * 1024];
        for (long left = start; left > 0;)
        {
            int n = await stream.ReadAsync(skip.AsMemory(0, (int)Math.Min(skip.Length, left)), cancellationToken).ConfigureAwait(false);
            if (n <= 0) throw new OriginException($"{origin.Display(url)} ended before byte {start:N0}; try again later");
            left -= n;
        }
        return stream;
    }

    /// <summary>How many times the transfer was resumed after a cut.</summary>
    public int Resumes => _resumes;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position >= _length || buffer.IsEmpty) return 0;
        if (buffer.Length > _length - _position) buffer = buffer[..(int)(_length - _position)];
        while (true)
        {
            int n;
            try
            {
                n = await _body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or HttpRequestException && !cancellationToken.IsCancellationRequested)
            {
                n = -1;
            }
            if (n > 0)
            {
                _position += n;
                return n;
            }
            await ResumeAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ResumeAsync(CancellationToken cancellationToken, bool immediately = false)
    {
        if (++_resumes > _maxResumes)
            throw new OriginException($"the connection to {_origin.Display(_url)} broke {_maxResumes} times at byte {_position:N0} of {_length:N0}; try again later");
        if (!immediately) await Task.Delay(TimeSpan.FromMilliseconds(200 * (1 << Math.Min(_resumes, 5))), cancellationToken).ConfigureAwait(false);
        _body.Dispose();
        _response.Dispose();
        var from = _ranges ? _position : 0;
        _response = await _origin.GetAsync(_url, cancellationToken, from > 0 ? new RangeHeaderValue(from, null) : null, _condition).ConfigureAwait(false);
        _body = await _response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        if (from > 0)
        {
            var range = _response.Content.Headers.ContentRange;
            if (_response.StatusCode != HttpStatusCode.PartialContent || range?.From != from)
                throw new OriginException($"the origin at {_origin.Display(_url)} did not resume at byte {from:N0} as asked (answered {(int)_response.StatusCode}); try again later");
            return;
        }
        // No ranges: read again from the start and throw away what we already have.
        var skip = new byte[64 * 1024];
        for (long left = _position; left > 0;)
        {
            int n = await _body.ReadAsync(skip.AsMemory(0, (int)Math.Min(skip.Length, left)), cancellationToken).ConfigureAwait(false);
            if (n <= 0) throw new OriginException($"the origin at {_origin.Display(_url)} sent less than before when asked again; try again later");
            left -= n;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => _length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _body.Dispose();
            _response.Dispose();
        }
        base.Dispose(disposing);
    }
}
