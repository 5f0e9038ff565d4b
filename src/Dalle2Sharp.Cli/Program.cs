using Dalle2Sharp.Cli.Commands;
using Dalle2Sharp;
using Spectre.Console.Cli;

namespace Dalle2Sharp.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        Runtime.NativeSetup.RestartWithAllocatorTunables();
        Runtime.NativeSetup.Configure();
        return Build().Run(args);
    }

    /// <summary>The command tree; tests run it in-process.</summary>
    public static CommandApp Build()
    {
        var app = new CommandApp();
        app.Configure(c =>
        {
            c.SetApplicationName("dalle2");
            // Argument mistakes exit 2 with Spectre's message; commands report their own failures through ExitCodes.
            c.SetExceptionHandler((e, _) =>
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return e is CommandAppException ? ExitCodes.BadInput : ExitCodes.Failure;
            });
            c.AddCommand<TrainDecoderCommand>("train-decoder")
                .WithDescription("Train the decoder from a config: epochs of training, validation, sample grids and checkpoints.");
            c.AddCommand<MpiCheckCommand>("mpi-check")
                .WithDescription("Check a data-parallel launch (mpirun -np N dalle2 mpi-check): collective speed, identical weights on every rank.");
            c.AddCommand<QuickstartCommand>("quickstart")
                .WithDescription("Generate the small shapes dataset (first run only) and train on it with configs/quickstart.json.");
            c.AddCommand<SampleCommand>("sample")
                .WithDescription("Generate images from image embeddings (.npy) with a trained decoder checkpoint.");
            c.AddCommand<VariationsCommand>("variations")
                .WithDescription("Variations of images: each embedded with CLIP, then decoded N times (grid of originals and variations).");
            c.AddCommand<EmbedCommand>("embed")
                .WithDescription("CLIP embeddings of a webdataset (img_emb/, text_emb/) in the layout training reads; resumable per shard.");
            c.AddCommand<EvaluateCommand>("evaluate")
                .WithDescription("Compute the config's evaluation metrics (FID, IS, KID, LPIPS) for a checkpoint.");
            c.AddBranch("config", config =>
            {
                config.SetDescription("Check, resolve and describe decoder training configs.");
                config.AddCommand<ConfigValidateCommand>("validate")
                    .WithDescription("Validate a config: exit 0 with a summary, or exit 2 with every error and its JSON path.");
                config.AddCommand<ConfigShowCommand>("show")
                    .WithDescription("Print the resolved config (every default filled in) as JSON.");
                config.AddCommand<ConfigSchemaCommand>("schema")
                    .WithDescription("Print a JSON Schema of the config for editor completion.");
                config.AddCommand<ConfigReferenceCommand>("reference")
                    .WithDescription("Print the Markdown reference of every config option (the README's).");
            });
            c.AddBranch("data", data =>
            {
                data.SetDescription("Check a dataset before training.");
                data.AddCommand<DataCheckCommand>("check")
                    .WithDescription("Read every shard and embedding file the config names; a table and a verdict (exit 1 when training would " +
                        "fail or skip data).");
            });
            c.AddBranch("tracker", tracker =>
            {
                tracker.SetDescription("Remote trackers (wandb, Hugging Face Hub).");
                tracker.AddCommand<TrackerSyncCommand>("sync")
                    .WithDescription("Upload what an offline run or an outage left in data_path (metrics, images, files, checkpoints).");
            });
            c.AddBranch("model", model =>
            {
                model.SetDescription("Inspect the model a config describes.");
                model.AddCommand<ModelSummaryCommand>("summary")
                    .WithDescription("Each unet's parameter count and the decoder's state_dict keys with shapes.");
            });
        });
        return app;
    }
}
