import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.storm.multilang.BoltMsg;
import org.apache.storm.multilang.ISerializer;
import org.apache.storm.multilang.JsonSerializer;
import org.apache.storm.shade.net.minidev.json.JSONValue;
import pistats.multilang.FastJsonSerializer;

/**
 * Storm's JsonSerializer against pistats.multilang.FastJsonSerializer, side by side in one JVM
 * (run by benchmarks/multilang_serializer.py): args FILE ROUNDS, FILE holding one tuple per line
 * as JSON (read by json-smart, as Storm holds it). Each round, for each serializer: every tuple
 * written as a bolt message, then every tuple read back as a Python component's emit. Prints
 * "NAME write|read NANOS" per round.
 */
public class MultilangSerializerBench {
    public static void main(String[] args) throws Exception {
        List<List<Object>> tuples = new ArrayList<>();
        StringBuilder emits = new StringBuilder();
        for (String line : Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8)) {
            tuples.add((List<Object>) JSONValue.parseWithException(line));
            emits.append("{\"command\": \"emit\", \"anchors\": [\"-6955786537413359385\"], \"stream\": \"default\", \"tuple\": ")
                 .append(line).append("}\nend\n");
        }
        byte[] emitBytes = emits.toString().getBytes(StandardCharsets.UTF_8);
        int rounds = Integer.parseInt(args[1]);
        for (int round = 0; round < rounds; round++) {
            for (ISerializer serializer : new ISerializer[] {new JsonSerializer(), new FastJsonSerializer()}) {
                String name = serializer instanceof FastJsonSerializer ? "fast" : "storm";
                serializer.initialize(OutputStream.nullOutputStream(), new ByteArrayInputStream(emitBytes));
                BoltMsg msg = new BoltMsg();
                msg.setId("-6955786537413359385");
                msg.setComp("kinesis");
                msg.setStream("default");
                msg.setTask(3);
                long started = System.nanoTime();
                for (List<Object> tuple : tuples) {
                    msg.setTuple(tuple);
                    serializer.writeBoltMsg(msg);
                }
                System.out.println(name + " write " + (System.nanoTime() - started));
                started = System.nanoTime();
                for (int i = 0; i < tuples.size(); i++) {
                    serializer.readShellMsg();
                }
                System.out.println(name + " read " + (System.nanoTime() - started));
            }
        }
    }
}
