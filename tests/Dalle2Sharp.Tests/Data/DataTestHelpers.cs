using Dalle2Sharp.Config;
using Dalle2Sharp.Data;

namespace Dalle2Sharp.Tests.Data;

public static class DataTestHelpers
{
    public static DataConfig Config(string pattern, string? embeddings, int shards, int batch = 4, int workers = 2, int size = 16) => new()
    {
        WebdatasetBaseUrl = pattern, ImgEmbeddingsUrl = embeddings, StartShard = 0, EndShard = shards - 1, ShardWidth = 5,
        BatchSize = batch, NumWorkers = workers, ShuffleTrain = false,
        Preprocessing = PreprocessingFor(size),
    };

    public static PreprocessingConfig PreprocessingFor(int size)
    {
        var p = new PreprocessingConfig();
        p.Steps.Add(new RandomResizedCropConfig { Size = size, Scale = [0.75, 1.0], Ratio = [1.0, 1.0] });
        p.Steps.Add(new ToTensorConfig());
        return p;
    }

    public static (List<DecoderBatch> Batches, List<string> Warnings, DataIssues Issues) ReadAll(DataConfig config, LoaderOptions? options = null, bool requireEmbeddings = true)
    {
        var warnings = new List<string>();
        var issues = new DataIssues(w => { lock (warnings) warnings.Add(w); });
        var dataset = new DecoderDataset(config, issues, requireEmbeddings);
        var shards = ShardSpec.Urls(config.WebdatasetBaseUrl, config.StartShard, config.EndShard, config.ShardWidth);
        var loader = new DecoderDataLoader(shards, dataset, options ?? new LoaderOptions { BatchSize = config.BatchSize, NumWorkers = config.NumWorkers });
        return (loader.ToList(), warnings, issues);
    }
}
