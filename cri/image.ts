/**
 * The CRI's ImageService: ListImages, ImageStatus, PullImage (with registry credentials),
 * RemoveImage and ImageFsInfo, on the engine's image manager.
 *
 * As the CRI asks: the status of a missing image is an empty answer, not an error, and
 * removing a missing image succeeds.
 *
 * @module
 */
import { isNotFound } from "../engine/errors.ts";
import type { ImageInspect, ImageSummary } from "../engine/image.ts";
import type { CriContext } from "./context.ts";
import type { Handlers } from "./server.ts";
import type { CriAuthConfig, ImageSpec, Opt } from "./types.ts";
import { invalidArgument } from "../engine/errors.ts";

/** The image RPCs' handlers. */
export function imageHandlers(ctx: CriContext): Handlers {
  const images = ctx.backend.images;
  return {
    async ListImages(request: { filter: Opt<{ image: Opt<ImageSpec> }> }) {
      const wanted = request.filter?.image?.image;
      let list: ImageSummary[] = await images.list();
      if (wanted) {
        const id = await images.resolve(wanted).then((image) => image.id, () => "");
        list = list.filter((image) => image.Id === id);
      }
      return {
        images: list.map((image) => ({
          id: image.Id,
          repoTags: image.RepoTags,
          repoDigests: image.RepoDigests,
          size: image.Size,
          spec: { image: image.Id, annotations: {} },
          pinned: false,
        })),
      };
    },

    async ImageStatus(request: { image: Opt<ImageSpec> }) {
      const ref = request.image?.image;
      if (!ref) throw invalidArgument("image.image is required");
      let image: ImageInspect;
      try {
        image = await images.inspect(ref);
      } catch (err) {
        if (isNotFound(err)) return { image: null, info: {} };
        throw err;
      }
      return { image: imageOf(image), info: {} };
    },

    async PullImage(request: { image: Opt<ImageSpec>; auth: Opt<CriAuthConfig> }) {
      const ref = request.image?.image;
      if (!ref) throw invalidArgument("image.image is required");
      const auth = request.auth;
      const result = await images.pull(ref, {
        auth: auth
          ? {
            username: auth.username || undefined,
            password: auth.password || undefined,
            auth: auth.auth || undefined,
            serveraddress: auth.serverAddress || undefined,
            identitytoken: auth.identityToken || undefined,
            registrytoken: auth.registryToken || undefined,
          }
          : undefined,
      });
      return { imageRef: result.id };
    },

    async RemoveImage(request: { image: Opt<ImageSpec> }) {
      const ref = request.image?.image;
      if (!ref) throw invalidArgument("image.image is required");
      try {
        // By ID the kubelet means the image with all its names.
        await images.remove(ref, { force: true });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      return {};
    },

    async ImageFsInfo() {
      const used = (await images.list()).reduce((sum, image) => sum + image.Size, 0);
      const usage = {
        timestamp: Date.now() * 1e6,
        fsId: { mountpoint: ctx.settings.imageFsPath },
        usedBytes: { value: used },
        inodesUsed: { value: 0 },
      };
      return { imageFilesystems: [usage], containerFilesystems: [usage] };
    },
  };
}

/** CRI's `Image` of an inspected image: the user given by number or by name. */
function imageOf(image: ImageInspect) {
  const user = (image.Config?.User ?? "").split(":")[0] ?? "";
  const numeric = /^\d+$/.test(user);
  return {
    id: image.Id,
    repoTags: image.RepoTags,
    repoDigests: image.RepoDigests,
    size: image.Size,
    uid: numeric ? { value: Number(user) } : null,
    username: numeric ? "" : user,
    spec: { image: image.Id, annotations: {} },
    pinned: false,
  };
}
