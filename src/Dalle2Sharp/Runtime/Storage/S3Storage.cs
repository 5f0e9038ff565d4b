using System.Collections.Concurrent;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// s3:// URLs through the AWS SDK for .NET: the standard credential chain (AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE and ~/.aws/credentials, SSO, instance and
/// container roles), the region from AWS_REGION / AWS_DEFAULT_REGION / the profile (us-east-1 when none
/// is set), and AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for S3-compatible stores (MinIO, R2, Ceph…),
/// addressed path-style as they expect. Reads have the stall timeout of every other source and pick up
/// where they stopped (a ranged GET) when a connection drops mid-object.
/// </summary>
public static class S3Storage
{
    private static readonly ConcurrentDictionary<string, AmazonS3Client> Clients = new();

    /// <summary>Bucket and key of an s3:// URL.</summary>
    public static (string Bucket, string Key) Parse(string url)
    {
        if (!Storage.IsS3(url)) throw new ArgumentException($"not an s3:// URL: {url}");
        string rest = url["s3://".Length..];
        int slash = rest.IndexOf('/');
        string bucket = slash < 0 ? rest : rest[..slash];
        if (bucket.Length == 0) throw new UserInputException($"{url}: no bucket name");
        return (bucket, slash < 0 ? "" : rest[(slash + 1)..]);
    }

    /// <summary>
    /// The client for the current environment (one per endpoint, region and identity, so that a changed
    /// environment is honoured). Endpoint variables are read here explicitly, whatever the SDK version does.
    /// </summary>
    internal static AmazonS3Client Client(IoTimeouts timeouts)
    {
        string? endpoint = Env("AWS_ENDPOINT_URL_S3") ?? Env("AWS_ENDPOINT_URL");
        string? region = Env("AWS_REGION") ?? Env("AWS_DEFAULT_REGION");
        string identity = $"{endpoint}|{region}|{Env("AWS_ACCESS_KEY_ID")}|{Env("AWS_PROFILE")}|{timeouts}";
        return Clients.GetOrAdd(identity, _ =>
        {
            var config = new AmazonS3Config
            {
                Timeout = timeouts.Connect + timeouts.Stall,
                MaxErrorRetry = timeouts.Retries,
                // Flexible checksums only where S3 requires them: S3-compatible stores do not all accept trailers.
                RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
                ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            };
            if (endpoint is not null)
            {
                config.ServiceURL = endpoint;
                config.ForcePathStyle = true;
                config.AuthenticationRegion = region ?? "us-east-1";
            }
            else
            {
                region ??= Amazon.Runtime.FallbackRegionFactory.GetRegionEndpoint()?.SystemName ?? "us-east-1";
                config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(region);
            }
            return new AmazonS3Client(config);
        });
    }

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    public static Stream OpenRead(string url, IoTimeouts timeouts) => new S3ObjectStream(url, timeouts);

    /// <summary>The size of an object opened by <see cref="OpenRead"/>.</summary>
    internal static long? LengthOf(Stream stream) => (stream as S3ObjectStream)?.ObjectLength;

    /// <summary>The names of the objects directly under a prefix ("folder/"), every page of the listing.</summary>
    public static IReadOnlyList<string> List(string folderUrl, IoTimeouts timeouts)
    {
        var (bucket, key) = Parse(folderUrl);
        string prefix = key.Length == 0 || key.EndsWith('/') ? key : key + "/";
        var names = new List<string>();
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = prefix, Delimiter = "/" };
        while (true)
        {
            var page = Call(folderUrl, "list", () => Client(timeouts).ListObjectsV2Async(request).GetAwaiter().GetResult());
            names.AddRange((page.S3Objects ?? []).Select(o => o.Key[prefix.Length..]).Where(n => n.Length > 0));
            if (page.IsTruncated != true || page.NextContinuationToken is null) return names;
            request.ContinuationToken = page.NextContinuationToken;
        }
    }

    /// <summary>S3's limit for a single PUT; larger files go through the SDK's multipart upload.</summary>
    private const long SinglePutLimit = 5L << 30;

    /// <summary>
    /// Uploads a local file to an s3:// URL. Single PUTs are sent unchunked (a plain signed body): some
    /// S3-compatible stores keep aws-chunked framing as the object's bytes.
    /// </summary>
    public static void Upload(string localFile, string url, IoTimeouts? timeouts = null)
    {
        var (bucket, key) = Parse(url);
        var client = Client(timeouts ?? IoTimeouts.Default);
        if (new FileInfo(localFile).Length < SinglePutLimit)
        {
            var put = new PutObjectRequest { BucketName = bucket, Key = key, FilePath = localFile, UseChunkEncoding = false };
            Call(url, "upload", () => client.PutObjectAsync(put).GetAwaiter().GetResult());
            return;
        }
        using var transfer = new Amazon.S3.Transfer.TransferUtility(client);
        Call(url, "upload", () => { transfer.UploadAsync(localFile, bucket, key).GetAwaiter().GetResult(); return 0; });
    }

    /// <summary>Runs an SDK call; its failures become IOExceptions that name the URL (never credentials).</summary>
    internal static T Call<T>(string url, string what, Func<T> call)
    {
        try { return call(); }
        catch (AmazonS3Exception e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            throw new FileNotFoundException($"S3 {what} {url}: not found ({e.ErrorCode})");
        }
        catch (AmazonServiceException e)
        {
            string failure = $"S3 {what} {url}: {(int)e.StatusCode} {e.ErrorCode}: {e.Message}";
            throw (int)e.StatusCode >= 500 ? new NetworkException(failure) : new IOException(failure);
        }
        catch (AmazonClientException e)
        {
            throw new NetworkException($"S3 {what} {url}: {e.Message}" +
                (e.Message.Contains("credentials", StringComparison.OrdinalIgnoreCase)
                    ? " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an instance role applies)" : ""));
        }
        catch (HttpRequestException e) { throw new NetworkException($"S3 {what} {url}: {e.Message}"); }
        catch (TaskCanceledException) { throw new NetworkException($"S3 {what} {url}: no response in time"); }
    }

    /// <summary>An object's body, read with a stall timeout per read and reopened with a ranged GET when the connection fails.</summary>
    private sealed class S3ObjectStream : ForwardOnlyStream
    {
        private readonly string _url, _bucket, _key;
        private readonly IoTimeouts _timeouts;
        private GetObjectResponse _response;
        private Stream _body;
        private long _position;
        private int _resumes;

        public S3ObjectStream(string url, IoTimeouts timeouts)
        {
            (_url, _timeouts) = (url, timeouts);
            (_bucket, _key) = Parse(url);
            _response = Get(0);
            ObjectLength = _response.ContentLength;
            _body = _response.ResponseStream;
        }

        public long ObjectLength { get; }

        private GetObjectResponse Get(long offset)
        {
            var request = new GetObjectRequest { BucketName = _bucket, Key = _key };
            if (offset > 0) request.ByteRange = new ByteRange(offset, ObjectLength - 1);
            return Call(_url, "GET", () => Client(_timeouts).GetObjectAsync(request).GetAwaiter().GetResult());
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_position >= ObjectLength) return 0;
            while (true)
            {
                string failure;
                try
                {
                    var read = _body.ReadAsync(buffer, offset, count);
                    if (!read.Wait(_timeouts.Stall))
                    {
                        _response.Dispose();
                        failure = $"no data for {_timeouts.Stall.TotalSeconds:0} s (stalled)";
                    }
                    else if (read.Result == 0 && _position < ObjectLength) failure = $"the connection closed at byte {_position} of {ObjectLength}";
                    else
                    {
                        _position += read.Result;
                        if (read.Result > 0) _resumes = 0;
                        return read.Result;
                    }
                }
                catch (AggregateException e) when (e.InnerException is IOException or HttpRequestException) { failure = e.InnerException!.Message; }
                catch (Exception e) when (e is IOException or HttpRequestException) { failure = e.Message; }
                if (++_resumes > _timeouts.Retries) throw new NetworkException($"reading {_url} at byte {_position}: {failure}");
                _response.Dispose();
                _response = Get(_position);
                _body = _response.ResponseStream;
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _response.Dispose();
            base.Dispose(disposing);
        }
    }
}
