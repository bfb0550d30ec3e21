;; Builds the topology jar for streamparse (`sparse run` / `sparse submit`).
;; Storm 2: depend on storm-client, never storm-core (>= 2.5 it pulls carbonite from Clojars,
;; which is not reachable here). Everything resolves from Maven Central only. Storm is
;; "provided" (the cluster has it), so the jar holds the Python code under resources/ and the
;; classes compiled from jvm/ (the multilang serializer, pistats.multilang.FastJsonSerializer).
(defproject pistats "0.1.0-SNAPSHOT"
  :description "piStats enrichment topology (Python components via streamparse)"
  :repositories ^:replace [["central" {:url "https://repo1.maven.org/maven2/" :snapshots false}]]
  :dependencies []
  ;; :base is emptied because Leiningen's default one injects nREPL from Clojars.
  :profiles {:base {}
             :provided {:dependencies [[org.apache.storm/storm-client "2.8.3"]]}}
  :resource-paths ["_resources"]
  :java-source-paths ["jvm"]
  :jar-exclusions [#"\.java$"]
  :javac-options ["--release" "17"]
  :target-path "_build"
  :min-lein-version "2.0.0")
