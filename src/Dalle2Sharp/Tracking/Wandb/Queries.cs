namespace Dalle2Sharp.Tracking.Wandb;

/// <summary>The GraphQL operations wandb's own clients send (core/api/graphql/*.graphql), field for field.</summary>
internal static class Queries
{
    public const string Viewer = """
        query Viewer {
          viewer { id entity username email flags teams { edges { node { name } } } }
        }
        """;

    public const string UpsertBucket = """
        mutation UpsertBucket(
            $id: String, $name: String, $project: String, $entity: String, $groupName: String,
            $description: String, $displayName: String, $notes: String, $commit: String,
            $config: JSONString, $host: String, $debug: Boolean, $program: String, $repo: String,
            $jobType: String, $state: String, $sweep: String, $tags: [String!], $summaryMetrics: JSONString,
        ) {
            upsertBucket(input: {
                id: $id, name: $name, groupName: $groupName, modelName: $project, entityName: $entity,
                description: $description, displayName: $displayName, notes: $notes, config: $config,
                commit: $commit, host: $host, debug: $debug, jobProgram: $program, jobRepo: $repo,
                jobType: $jobType, state: $state, sweep: $sweep, tags: $tags, summaryMetrics: $summaryMetrics,
            }) {
                bucket {
                    id name displayName description config sweepName
                    project { id name entity { id name } }
                    historyLineCount
                }
                inserted
            }
        }
        """;

    public const string RunResumeStatus = """
        query RunResumeStatus($project: String, $entity: String, $name: String!) {
          model(name: $project, entityName: $entity) {
            id name entity { id name }
            bucket(name: $name, missingOk: true) {
              id name summaryMetrics displayName logLineCount historyLineCount eventsLineCount
              historyTail eventsTail config tags notes
              wandbConfig(keys: ["t"])
            }
          }
        }
        """;

    public const string CreateRunFiles = """
        mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) {
            createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
                runID
                uploadHeaders
                files { name uploadUrl }
            }
        }
        """;

    public const string RunFiles = """
        query RunFiles($project: String!, $entity: String!, $name: String!, $fileCursor: String,
            $fileLimit: Int = 50, $fileNames: [String] = [], $upload: Boolean = false, $pattern: String) {
          project(name: $project, entityName: $entity) {
            internalId
            run(name: $name) { fileCount ...RunFilesFragment }
          }
        }
        fragment RunFilesFragment on Run {
          files(names: $fileNames, after: $fileCursor, first: $fileLimit, pattern: $pattern) {
            edges { node { id name url(upload: $upload) directUrl sizeBytes mimetype updatedAt md5 } cursor }
            pageInfo { endCursor hasNextPage }
          }
        }
        """;
}
