// `sdmlm serve`: parse the options, run the server (src/serve).
#include "commands.h"
#include "sdmlm/serve.h"

namespace sdmlm::cli {

void add_serve_commands(CLI::App& app, Runner& runner) {
  auto o = std::make_shared<serve::ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server; every answer carries its SDM verification");
  cmd->footer(
      "Example: sdmlm serve --model runs/sdm --verifier runs/sdm/verifier --port 8080\n"
      "  curl -s localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
      "    -d '{\"messages\": [{\"role\": \"user\", \"content\": \"...\"}], \"max_tokens\": 64, \"temperature\": 0}'");
  cmd->add_option("--model", o->model, "Model or run directory (a run's best/ is used)")->required();
  cmd->add_option("--verifier", o->verifier,
                  "Verifier directory (sdmlm verifier train) for the `sdm` field of every choice");
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free port; the chosen one is printed)")->capture_default_str();
  cmd->add_option("--api_key", o->api_key, "Require `Authorization: Bearer KEY` on /v1/*");
  cmd->add_option("--api_key_file", o->api_key_file, "Read the API key from this file's first line");
  cmd->add_option("--model_name", o->model_name,
                  "Model name in /v1/models and responses (default: the directory's name)");
  cmd->add_option("--parallel", o->parallel, "Sequences decoded together at most (continuous batching slots)")
      ->capture_default_str();
  cmd->add_option("--max_queue", o->max_queue, "Choices waiting for a slot at most; a full queue answers 503")
      ->capture_default_str();
  cmd->add_option("--max_tokens_limit", o->max_tokens_limit, "Largest max_tokens a request may ask (above: 400)")
      ->capture_default_str();
  cmd->add_option("--context", o->context, "Tokens per sequence (prompt + answer) at most; 0 = the model's context")
      ->capture_default_str();
  cmd->add_option("--max_body_bytes", o->max_body_bytes, "Largest request body (above: 413)")->capture_default_str();
  cmd->add_option("--alpha", o->alpha, "Default alpha of the high-reliability region")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seeds of requests that give none are derived from this")->capture_default_str();
  cmd->add_option("--drain_seconds", o->drain_seconds, "On SIGTERM, wait this long at most for requests in flight")
      ->capture_default_str();
  cmd->add_option("--verify_features", o->verify_features,
                  "reuse: features from the generation's own states; recompute: a feature pass per answer (sdmlm "
                  "verify's arithmetic)")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
  cmd->callback([&runner, o] {
    runner = [o] {
      parse_device(o->device);  // a clear error (exit 4) when CUDA is asked for but absent
      serve::serve(*o);
    };
  });
}

}  // namespace sdmlm::cli
